//! Where `prefetch get` writes: standard output for `-`; a FIFO or a
//! device written in place (never replaced); a regular file replaced
//! whole through a temporary next to it, keeping the old file's mode and
//! owner, and written through a symlink to its target; or, with
//! `--continue`, a `FILE.part` kept for the next run (`resume.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::resume::ResumableFile;

/// How many symlinks are followed to find what `-o` names, as the kernel's
/// own limit (`ELOOP` after 40).
const MAX_SYMLINKS: usize = 40;

/// The destination of a download.
pub(crate) enum Output {
    /// `-o -`.
    Stdout(io::Stdout),
    /// A FIFO or a device: opened for writing and written in place.
    InPlace { file: File, path: PathBuf },
    /// A regular file, new or replaced whole once the bytes are complete.
    Replace(Box<PartialFile>),
    /// `--continue`: `FILE.part`, appended to and renamed once complete.
    Resume(Box<ResumableFile>),
}

impl Output {
    /// Opens what `path` names for writing, `-` being standard output.
    ///
    /// # Errors
    ///
    /// A socket or a directory at `path` (or at the end of its symlinks),
    /// or a file or folder that cannot be opened or created.
    pub(crate) fn open(path: &Path) -> Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout(io::stdout()));
        }
        let target = follow_symlinks(path)?;
        match fs::metadata(&target) {
            Ok(meta) if meta.is_file() => Ok(Output::Replace(Box::new(PartialFile::create(
                &target,
                Some(meta),
            )?))),
            Ok(meta) if meta.is_dir() => Err(Error::msg(format_args!(
                "{}: is a directory",
                path.display()
            ))),
            Ok(meta) if is_written_in_place(&meta) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .map_err(|err| {
                        Error::msg(format_args!("cannot open {}: {err}", path.display()))
                    })?;
                Ok(Output::InPlace {
                    file,
                    path: path.to_owned(),
                })
            }
            Ok(_) => Err(Error::msg(format_args!(
                "{}: not a regular file, FIFO or device (a socket?): refusing to write to it",
                path.display()
            ))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Output::Replace(Box::new(
                PartialFile::create(&target, None)?,
            ))),
            Err(err) => Err(Error::msg(format_args!("{}: {err}", path.display()))),
        }
    }

    /// Where the bytes go.
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(stdout) => stdout,
            Output::InPlace { file, .. } => file,
            Output::Replace(partial) => &mut partial.file,
            Output::Resume(resumable) => resumable.writer(),
        }
    }

    /// The message for a failed write.
    pub(crate) fn write_error(&self, err: io::Error) -> Error {
        Error::msg(format_args!("cannot write {}: {err}", self.name()))
    }

    /// The destination as the summary names it.
    pub(crate) fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".to_owned(),
            Output::InPlace { path, .. } => path.display().to_string(),
            Output::Replace(partial) => partial.destination.display().to_string(),
            Output::Resume(resumable) => resumable.destination().display().to_string(),
        }
    }

    /// Flushes the bytes, and puts a replaced file in place.
    ///
    /// # Errors
    ///
    /// A failed flush, sync or rename.
    pub(crate) fn finish(&mut self) -> Result<()> {
        match self {
            Output::Stdout(stdout) => stdout.flush().map_err(|err| self.write_error(err)),
            Output::InPlace { file, .. } => file.flush().map_err(|err| self.write_error(err)),
            Output::Replace(partial) => partial.persist(),
            Output::Resume(resumable) => resumable.finish(),
        }
    }
}

/// FIFOs and character or block devices (`/dev/null`, a tape) are
/// written in place: replacing them with a regular file would break
/// whatever reads them, or the system.
#[cfg(unix)]
fn is_written_in_place(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    kind.is_fifo() || kind.is_char_device() || kind.is_block_device()
}

#[cfg(not(unix))]
fn is_written_in_place(_meta: &fs::Metadata) -> bool {
    false
}

/// `path` with its symlinks followed (each relative one from its own
/// folder), so the file written is the link's target, as curl and wget
/// do; a dangling link names the file to create.
pub(crate) fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current).map_err(|err| {
                    Error::msg(format_args!(
                        "cannot read the link {}: {err}",
                        current.display()
                    ))
                })?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::msg(format_args!(
        "{}: more than {MAX_SYMLINKS} symlinks",
        path.display()
    )))
}

/// The file being written: a hidden temporary next to the destination, so
/// the rename is atomic (same file system), removed unless it is persisted.
pub(crate) struct PartialFile {
    file: File,
    path: PathBuf,
    destination: PathBuf,
    /// What is being replaced, whose mode and owner the new file keeps.
    replaced: Option<fs::Metadata>,
    persisted: bool,
}

impl PartialFile {
    fn create(destination: &Path, replaced: Option<fs::Metadata>) -> Result<PartialFile> {
        let name = destination.file_name().ok_or_else(|| {
            Error::msg(format_args!(
                "{}: not a file name to write to",
                destination.display()
            ))
        })?;
        let folder = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let pid = std::process::id();
        let mut attempt = 0u32;
        loop {
            let mut temp = std::ffi::OsString::from(".");
            temp.push(name);
            temp.push(format!(".{pid}-{attempt}.part"));
            let path = folder.join(temp);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(PartialFile {
                        file,
                        path,
                        destination: destination.to_owned(),
                        replaced,
                        persisted: false,
                    })
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(err) => {
                    return Err(Error::msg(format_args!(
                        "cannot create a file in {}: {err}",
                        folder.display()
                    )))
                }
            }
        }
    }

    /// The temporary file's path (removed on an interrupt).
    pub(crate) fn temp_path(&self) -> &Path {
        &self.path
    }

    fn write_error(&self, err: io::Error) -> Error {
        Error::msg(format_args!(
            "cannot write {}: {err}",
            self.destination.display()
        ))
    }

    /// Flushes the bytes to disk, gives the file the replaced one's mode
    /// and owner, and renames it into place.
    fn persist(&mut self) -> Result<()> {
        put_in_place(
            &mut self.file,
            &self.path,
            &self.destination,
            self.replaced.as_ref(),
        )
        .map_err(|err| self.write_error(err))?;
        self.persisted = true;
        Ok(())
    }
}

/// Puts the finished file `file`, written at `path`, in place at
/// `destination`: flushed and synced to disk, with the mode and owner of
/// the file it replaces (`replaced`), renamed over it.
///
/// # Errors
///
/// A failed flush, sync, change of mode or rename.
pub(crate) fn put_in_place(
    file: &mut File,
    path: &Path,
    destination: &Path,
    replaced: Option<&fs::Metadata>,
) -> io::Result<()> {
    file.flush()?;
    file.sync_all()?;
    if let Some(old) = replaced {
        file.set_permissions(old.permissions())?;
        keep_owner(file, old);
    }
    fs::rename(path, destination)
}

/// Gives `file` the owner and group of `old`, where permitted (a user may
/// not give a file away; then it stays theirs, as with curl).
#[cfg(unix)]
fn keep_owner(file: &File, old: &fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    if let Err(err) = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
        log::debug!("cannot keep the replaced file's owner: {err}");
    }
}

#[cfg(not(unix))]
fn keep_owner(_file: &File, _old: &fs::Metadata) {}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.persisted {
            if let Err(err) = fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {err}", self.path.display());
            }
        }
    }
}
