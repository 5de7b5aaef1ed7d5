//! [`FileSource`]: a local file read with positional reads.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{FetchContext, PartSink, RangeSource, STREAM_CHUNK};
use crate::error::{Error, Result};

/// A local file, read with positional reads (`pread`), so many blocks can
/// be read at once through one handle.
///
/// The length is taken at open. A file truncated while it is read gives
/// [`Error::Truncated`], never a crash or zero-filled bytes.
///
/// ```no_run
/// use prefetch_reader::{FileSource, PrefetchReader};
///
/// let reader = PrefetchReader::new(FileSource::open("data.bin")?)?;
/// # Ok::<(), prefetch_reader::Error>(())
/// ```
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
    /// The modification time at open, as the validator.
    modified: Option<SystemTime>,
}

impl FileSource {
    /// Opens the file at `path` and takes its length.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`] or [`Error::Io`]
    /// naming the path.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource> {
        let path = path.as_ref();
        let (file, len) = open_file(path)?;
        let modified = file.metadata().and_then(|meta| meta.modified()).ok();
        Ok(FileSource {
            file,
            path: path.to_owned(),
            len,
            modified,
        })
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `path` for reading and returns it with its length; errors name
/// the path.
pub(crate) fn open_file(path: &Path) -> Result<(File, u64)> {
    let name = || path.display().to_string();
    let file = File::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            object: name(),
            detail: String::new(),
        },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            object: name(),
            status: 0,
            detail: String::new(),
        },
        _ => Error::io(format!("cannot open {}", name()), err),
    })?;
    let meta = file
        .metadata()
        .map_err(|err| Error::io(format!("cannot stat {}", name()), err))?;
    if meta.is_dir() {
        return Err(Error::InvalidLocation {
            location: name(),
            reason: "is a directory".to_owned(),
        });
    }
    Ok((file, meta.len()))
}

impl RangeSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.read_streaming(offset, &mut PartSink::new(buf), ctx)
    }

    /// Reads a chunk at a time, committing each.
    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        while !sink.is_full() {
            ctx.check_cancelled()?;
            let at = offset + sink.filled() as u64;
            let chunk = sink.unfilled();
            let n = chunk.len().min(STREAM_CHUNK);
            match read_at(&self.file, &mut chunk[..n], at) {
                Ok(0) => {
                    return Err(Error::Truncated {
                        object: self.location(),
                        offset,
                        expected: sink.len() as u64,
                        received: sink.filled() as u64,
                    })
                }
                Ok(n) => {
                    ctx.add_bytes(n as u64);
                    sink.commit(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(Error::io(
                        format!("cannot read {} at offset {at}", self.location()),
                        err,
                    ))
                }
            }
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// The modification time at open, in nanoseconds since 1970.
    fn validator(&self) -> Option<String> {
        let since_epoch = self.modified?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!("mtime={}", since_epoch.as_nanos()))
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_ranges_of_a_file() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let source = FileSource::open(tmp.path()).unwrap();
        assert_eq!(source.len(), 10);
        let mut buf = [0; 3];
        source.read_at(7, &mut buf, &FetchContext::new()).unwrap();
        assert_eq!(&buf, b"789");
    }

    #[test]
    fn a_file_truncated_while_open_gives_truncated() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[1; 100]).unwrap();
        let source = FileSource::open(tmp.path()).unwrap();
        tmp.as_file().set_len(50).unwrap();
        let mut buf = [0; 40];
        let err = source
            .read_at(30, &mut buf, &FetchContext::new())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    offset: 30,
                    expected: 40,
                    received: 20,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_validator_changes_when_the_file_is_rewritten() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let file = tmp.as_file();
        file.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000))
            .unwrap();
        let before = FileSource::open(tmp.path()).unwrap().validator();
        assert_eq!(before.as_deref(), Some("mtime=1000000000000"));
        file.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(2_000))
            .unwrap();
        let after = FileSource::open(tmp.path()).unwrap().validator();
        assert_ne!(before, after);
    }

    #[test]
    fn a_missing_file_is_not_found_naming_the_path() {
        let err = FileSource::open("/no/such/file.bin").unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        assert!(err.to_string().contains("/no/such/file.bin"));
    }
}
