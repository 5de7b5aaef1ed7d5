//! [`MemorySource`]: an object held in memory.

use std::fmt;

use super::{copy_range, FetchContext, PartSink, RangeSource};
use crate::error::Result;

/// An object held in memory; for tests, examples and data already loaded.
///
/// ```
/// use prefetch_reader::{MemorySource, PrefetchReader};
/// use std::io::Read;
///
/// let mut reader = PrefetchReader::new(MemorySource::new(b"hello".to_vec()))?;
/// let mut text = String::new();
/// reader.read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MemorySource {
    data: Vec<u8>,
}

impl MemorySource {
    /// An object made of `data`.
    pub fn new(data: Vec<u8>) -> MemorySource {
        MemorySource { data }
    }

    /// The object's bytes.
    pub fn get_ref(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the bytes: they may be large.
        f.debug_struct("MemorySource")
            .field("len", &self.data.len())
            .finish()
    }
}

impl RangeSource for MemorySource {
    fn len(&self) -> u64 {
        self.data.len() as u64
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
        copy_range(&self.data, offset, sink, ctx, || self.location())
    }

    fn location(&self) -> String {
        format!("memory ({} bytes)", self.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn reads_the_range_asked_for() {
        let source = MemorySource::new((0..10).collect());
        let mut buf = [0; 4];
        source.read_at(3, &mut buf, &FetchContext::new()).unwrap();
        assert_eq!(buf, [3, 4, 5, 6]);
    }

    #[test]
    fn a_range_past_the_end_is_truncated() {
        let source = MemorySource::new(vec![0; 10]);
        let mut buf = [0; 4];
        let err = source
            .read_at(8, &mut buf, &FetchContext::new())
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                offset: 8,
                expected: 4,
                ..
            }
        ));
    }
}
