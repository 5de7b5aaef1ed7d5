//! Copying a range of a reader to a writer straight from the reader's
//! blocks: no intermediate buffer, and writes as large as the blocks.

use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::ops::Range;

/// Which side of a copy failed: the caller words the two differently (and
/// `cat` treats a closed stdout as a normal end).
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies the bytes of `range` from `reader` to `out`, calling `progress`
/// with the bytes written so far after each write. Returns the bytes
/// copied.
///
/// # Errors
///
/// A read error (including an object shorter than its range), or a write
/// error.
pub(crate) fn copy_range<R: BufRead + Seek, W: Write + ?Sized>(
    reader: &mut R,
    range: Range<u64>,
    out: &mut W,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    if range.start != 0 {
        reader
            .seek(SeekFrom::Start(range.start))
            .map_err(CopyError::Read)?;
    }
    let mut copied = 0;
    let total = range.end - range.start;
    while copied < total {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(CopyError::Read(err)),
        };
        if buf.is_empty() {
            return Err(CopyError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the object ended at offset {}, before the {} bytes expected",
                    range.start + copied,
                    total
                ),
            )));
        }
        let n = buf
            .len()
            .min(usize::try_from(total - copied).unwrap_or(usize::MAX));
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        reader.consume(n);
        copied += n as u64;
        progress(copied);
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn copies_exactly_the_range() {
        let data: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        let mut reader = io::BufReader::with_capacity(7, Cursor::new(&data));
        let n = copy_range(&mut reader, 10..100, &mut out, |_| {}).expect("copy");
        assert_eq!(n, 90);
        assert_eq!(out, data[10..100]);
    }

    #[test]
    fn a_short_object_is_a_read_error() {
        let mut reader = Cursor::new(vec![1; 10]);
        let err = copy_range(&mut reader, 0..20, &mut Vec::new(), |_| {}).unwrap_err();
        assert!(
            matches!(&err, CopyError::Read(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
    }
}
