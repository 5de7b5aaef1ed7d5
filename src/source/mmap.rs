//! [`MmapSource`]: a local file read through a memory map (opt-in, `unsafe`).

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{copy_range, file::open_file, FetchContext, PartSink, RangeSource};
use crate::error::{Error, Result};

/// A local file read through a memory map: no system call per block.
///
/// Prefer [`FileSource`](crate::FileSource) unless profiles show the reads
/// matter: a map is only sound while nothing changes the file, which this
/// crate cannot promise.
#[derive(Debug)]
pub struct MmapSource {
    map: Option<Mmap>,
    path: PathBuf,
}

impl MmapSource {
    /// Maps the file at `path`.
    ///
    /// # Safety
    ///
    /// The file must not be changed (truncated, written) by this or any
    /// other process while the source or a reader over it lives. A file
    /// changed under a map is undefined behaviour: truncation crashes the
    /// process with `SIGBUS`, writes change bytes already handed out.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`] or [`Error::Io`]
    /// naming the path.
    pub unsafe fn open(path: impl AsRef<Path>) -> Result<MmapSource> {
        let path = path.as_ref();
        let (file, len) = open_file(path)?;
        // An empty file cannot be mapped on every platform; it needs no map.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the caller promises the file does not change while the
            // map lives (this function's contract).
            let map = unsafe { Mmap::map(&file) }
                .map_err(|err| Error::io(format!("cannot map {}", path.display()), err))?;
            Some(map)
        };
        Ok(MmapSource {
            map,
            path: path.to_owned(),
        })
    }
}

impl RangeSource for MmapSource {
    fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |map| map.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.read_streaming(offset, &mut PartSink::new(buf), ctx)
    }

    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        let data = self.map.as_deref().unwrap_or_default();
        copy_range(data, offset, sink, ctx, || self.location())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn map_reads_ranges_and_maps_empty_files() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(b"abcdef").unwrap();
        // SAFETY: the temporary file is not changed while mapped.
        let source = unsafe { MmapSource::open(tmp.path()) }.unwrap();
        let mut buf = [0; 2];
        source.read_at(4, &mut buf, &FetchContext::new()).unwrap();
        assert_eq!(&buf, b"ef");

        let empty = tempfile::NamedTempFile::new().unwrap();
        // SAFETY: as above.
        let source = unsafe { MmapSource::open(empty.path()) }.unwrap();
        assert_eq!(source.len(), 0);
    }
}
