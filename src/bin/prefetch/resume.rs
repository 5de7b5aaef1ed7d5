//! `prefetch get --continue`: the download goes to one fixed-name
//! `FILE.part`, with a sidecar `FILE.part.json` recording which version of
//! the object (validator, length, range) it holds. Both are kept when the
//! download is cut short; the next `get -c` appends to `FILE.part` when the
//! object is still that version, and starts over (saying so) when it is
//! not. Once complete, `FILE.part` is renamed to `FILE` and the sidecar
//! removed.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::{follow_symlinks, put_in_place};

/// The version of the object a `FILE.part` holds bytes of: what the sidecar
/// records. Bytes written under one version are only appended to under the
/// same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Version {
    /// The source's validator (`ETag`, generation, `Last-Modified`, mtime).
    pub(crate) validator: Option<String>,
    /// The object's length.
    pub(crate) length: u64,
    /// The first byte of the object downloaded (`--range`).
    pub(crate) start: u64,
    /// One past the last byte downloaded.
    pub(crate) end: u64,
}

/// What `get -c` finds at FILE.
pub(crate) enum Resume {
    /// FILE is there, of the object's length, with no `FILE.part`: it is
    /// left alone.
    Complete(PathBuf),
    /// Bytes to download into `FILE.part`, from [`ResumableFile::done`].
    Download(Box<ResumableFile>),
}

/// `FILE.part` open for appending, and its sidecar.
pub(crate) struct ResumableFile {
    file: File,
    part: PathBuf,
    sidecar: PathBuf,
    destination: PathBuf,
    /// FILE as it was, whose mode and owner the finished file keeps.
    replaced: Option<fs::Metadata>,
    /// Bytes already in `FILE.part` when it was opened.
    done: u64,
}

impl ResumableFile {
    /// Finds what a previous `get -c` of `version` left at `output` (after
    /// its symlinks), and opens `FILE.part` to go on from there. Says on
    /// stderr when it resumes and when, and why, it starts over.
    ///
    /// # Errors
    ///
    /// `-` or anything at FILE, `FILE.part` or the sidecar that is not a
    /// regular file (a symlink there is refused: it could point anywhere),
    /// or a file that cannot be read, created or written.
    pub(crate) fn open(output: &Path, version: &Version) -> Result<Resume> {
        if output.as_os_str() == "-" {
            return Err(Error::msg(
                "--continue needs a file to write to, not stdout (-)",
            ));
        }
        if output
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
        {
            return Err(Error::msg(format_args!(
                "{}: names a folder, not a file to write to",
                output.display()
            )));
        }
        let destination = follow_symlinks(output)?;
        let replaced = regular_file(&destination)?;
        let part = with_suffix(&destination, ".part")?;
        let sidecar = with_suffix(&destination, ".part.json")?;
        let part_len = regular_file(&part)?.map(|meta| meta.len());
        regular_file(&sidecar)?;
        let wanted = version.end - version.start;
        if part_len.is_none() {
            if let Some(old) = &replaced {
                if old.len() == wanted {
                    return Ok(Resume::Complete(destination));
                }
            }
        }
        // Opened (and locked) before anything is decided, so that a second
        // `get -c` of the same FILE is refused rather than interleaved.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(|err| Error::msg(format_args!("cannot open {}: {err}", part.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::msg(format_args!(
                    "{}: another download is writing it",
                    part.display()
                )))
            }
            Err(fs::TryLockError::Error(err)) => {
                return Err(Error::msg(format_args!(
                    "cannot lock {}: {err}",
                    part.display()
                )))
            }
        }

        let done = match part_len {
            None => {
                if let Some(old) = &replaced {
                    say(format_args!(
                        "{}: {} bytes, not the {wanted} expected, and no {}: downloading it again",
                        destination.display(),
                        old.len(),
                        part.display()
                    ));
                }
                0
            }
            Some(len) => match why_not_resumable(&sidecar, version, len) {
                None => {
                    say(format_args!(
                        "{}: resuming at {len} of {wanted} bytes",
                        part.display()
                    ));
                    len
                }
                Some(why) => {
                    say(format_args!("{}: {why}: starting over", part.display()));
                    0
                }
            },
        };
        // The bytes of another version go before the record names the new
        // one: a failure in between leaves an empty part, never old bytes
        // labelled as new.
        file.set_len(done)
            .and_then(|()| file.seek(SeekFrom::Start(done)).map(drop))
            .map_err(|err| Error::msg(format_args!("cannot write {}: {err}", part.display())))?;
        if done == 0 {
            write_sidecar(&sidecar, version)?;
        }
        Ok(Resume::Download(Box::new(ResumableFile {
            file,
            part,
            sidecar,
            destination,
            replaced,
            done,
        })))
    }

    /// Bytes of the range already in `FILE.part`: the download goes on
    /// from there.
    pub(crate) fn done(&self) -> u64 {
        self.done
    }

    /// Where the rest of the bytes go.
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        &mut self.file
    }

    /// FILE, as the summary names it.
    pub(crate) fn destination(&self) -> &Path {
        &self.destination
    }

    /// `FILE.part`, as the message for a failed download names it.
    pub(crate) fn part(&self) -> &Path {
        &self.part
    }

    /// Flushes the bytes to disk, gives the file the replaced FILE's mode
    /// and owner, renames it to FILE and removes the sidecar.
    ///
    /// # Errors
    ///
    /// A failed flush, sync or rename.
    pub(crate) fn finish(&mut self) -> Result<()> {
        put_in_place(
            &mut self.file,
            &self.part,
            &self.destination,
            self.replaced.as_ref(),
        )
        .map_err(|err| {
            Error::msg(format_args!(
                "cannot write {}: {err}",
                self.destination.display()
            ))
        })?;
        if let Err(err) = fs::remove_file(&self.sidecar) {
            log::warn!("cannot remove {}: {err}", self.sidecar.display());
        }
        Ok(())
    }
}

/// Why the bytes in a `FILE.part` of `len` bytes cannot be appended to
/// for `version`, or `None` when they can.
fn why_not_resumable(sidecar: &Path, version: &Version, len: u64) -> Option<String> {
    let recorded = match fs::read(sidecar) {
        Ok(bytes) => bytes,
        Err(err) => return Some(format!("cannot read {}: {err}", sidecar.display())),
    };
    let Ok(recorded) = serde_json::from_slice::<Version>(&recorded) else {
        return Some(format!(
            "{} is not a record of a download",
            sidecar.display()
        ));
    };
    if version.validator.is_none() {
        Some("the source gives no validator, so its bytes cannot be trusted to match".to_owned())
    } else if recorded.validator != version.validator {
        Some("the object has changed since (another validator)".to_owned())
    } else if recorded.length != version.length {
        Some("the object has changed since (another length)".to_owned())
    } else if (recorded.start, recorded.end) != (version.start, version.end) {
        Some("it holds another range of the object".to_owned())
    } else if len > version.end - version.start {
        Some("it is longer than the download".to_owned())
    } else {
        None
    }
}

/// Records `version` in the sidecar, before any byte goes to `FILE.part`.
fn write_sidecar(sidecar: &Path, version: &Version) -> Result<()> {
    let failed =
        |err: io::Error| Error::msg(format_args!("cannot write {}: {err}", sidecar.display()));
    let json = serde_json::to_vec(version).map_err(|err| failed(err.into()))?;
    let mut file = File::create(sidecar).map_err(failed)?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(failed)
}

/// The metadata of the regular file at `path`, `None` when there is
/// nothing there.
///
/// # Errors
///
/// Anything else at `path`, a symlink included.
fn regular_file(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta)),
        Ok(_) => Err(Error::msg(format_args!(
            "{}: not a regular file: --continue refuses to write to it",
            path.display()
        ))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::msg(format_args!("{}: {err}", path.display()))),
    }
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::msg(format_args!(
            "{}: not a file name to write to",
            path.display()
        ))
    })?;
    let mut name = OsString::from(name);
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// A line on stderr for the user (not a log: it is said whatever `-v`).
fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{message}");
}
