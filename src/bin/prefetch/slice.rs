//! A range of an object read as an object of its own, so a reader of the
//! bytes `--range` names never reads ahead past the range's end.

use std::fmt;

use prefetch_reader::{FetchContext, PartSink, RangeSource, Result};

/// The bytes `start..start + len` of `inner`, at offsets `0..len`.
pub(crate) struct Slice {
    inner: Box<dyn RangeSource>,
    start: u64,
    len: u64,
}

impl Slice {
    /// The bytes `range` of `inner`; the caller checked that it lies within.
    pub(crate) fn new(inner: Box<dyn RangeSource>, range: std::ops::Range<u64>) -> Slice {
        Slice {
            inner,
            start: range.start,
            len: range.end - range.start,
        }
    }
}

impl RangeSource for Slice {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.inner.read_at(self.start + offset, buf, ctx)
    }

    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        self.inner.read_streaming(self.start + offset, sink, ctx)
    }

    fn set_concurrency(&self, concurrency: usize) {
        self.inner.set_concurrency(concurrency);
    }

    fn requests_at_open(&self) -> u64 {
        self.inner.requests_at_open()
    }

    fn bytes_at_open(&self) -> u64 {
        self.inner.bytes_at_open()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn validator(&self) -> Option<String> {
        self.inner.validator()
    }

    fn supports_ranges(&self) -> bool {
        self.inner.supports_ranges()
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("inner", &self.inner)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefetch_reader::MemorySource;

    #[test]
    fn reads_are_shifted_to_the_range_and_the_length_is_the_range_s() {
        let data: Vec<u8> = (0..=255).collect();
        let slice = Slice::new(Box::new(MemorySource::new(data)), 100..150);
        assert_eq!(slice.len(), 50);
        let mut buf = [0; 10];
        slice
            .read_at(5, &mut buf, &FetchContext::new())
            .expect("read");
        assert_eq!(buf, [105, 106, 107, 108, 109, 110, 111, 112, 113, 114]);
    }
}
