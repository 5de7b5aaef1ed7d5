//! Parts handed to the reader as their bytes arrive: the first bytes of a
//! part are read while the rest are still on their way, a part that ends
//! short is `Truncated`, and sources that only implement `read_at` still
//! work.

mod common;

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use common::{crate_error, watchdog};
use parking_lot::{Condvar, Mutex};
use prefetch_reader::testing::{fill_pattern, pattern};
use prefetch_reader::{
    Error, FetchContext, MemorySource, PartSink, PrefetchReader, RangeSource, Result,
};

const WATCHDOG_SECS: u64 = 60;

/// A source that commits the first `first` bytes of every part at once,
/// then holds the rest until the gate opens.
#[derive(Debug)]
struct Gated {
    len: u64,
    first: usize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gated {
    fn new(len: u64, first: usize) -> Arc<Gated> {
        Arc::new(Gated {
            len,
            first,
            open: Mutex::new(false),
            opened: Condvar::new(),
        })
    }

    fn open_gate(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }

    fn commit_pattern(offset: u64, sink: &mut PartSink<'_>, n: usize, ctx: &FetchContext) {
        let at = offset + sink.filled() as u64;
        let chunk = &mut sink.unfilled()[..n];
        fill_pattern(at, chunk);
        ctx.add_bytes(n as u64);
        sink.commit(n);
    }
}

impl RangeSource for Gated {
    fn len(&self) -> u64 {
        self.len
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
        let first = self.first.min(sink.len());
        Self::commit_pattern(offset, sink, first, ctx);
        let mut open = self.open.lock();
        while !*open {
            ctx.check_cancelled()?;
            self.opened.wait_for(&mut open, Duration::from_millis(10));
        }
        drop(open);
        let rest = sink.unfilled().len();
        Self::commit_pattern(offset, sink, rest, ctx);
        Ok(())
    }
}

#[test]
fn the_first_bytes_of_a_part_are_read_before_the_rest_arrive() {
    watchdog(WATCHDOG_SECS, || {
        let len = 4 << 20;
        let source = Gated::new(len, 100_000);
        // One part for the whole object.
        let mut reader = PrefetchReader::builder()
            .first_request_size(len)
            .max_part_size(len)
            .build(source.clone())
            .expect("reader");
        let mut head = vec![0; 50_000];
        reader.read_exact(&mut head).expect("the first bytes");
        assert!(head == pattern(50_000), "wrong first bytes");
        // `fill_buf` lends what arrived, no more.
        let lent = reader.fill_buf().expect("fill_buf").len();
        assert_eq!(lent, 50_000, "fill_buf lent bytes that had not arrived");
        assert_eq!(reader.stats().requests, 1);
        source.open_gate();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("the rest");
        head.extend_from_slice(&rest);
        assert!(head == pattern(len as usize), "wrong bytes after the gate");
    });
}

#[test]
fn a_seek_within_a_part_still_arriving_waits_for_its_bytes() {
    watchdog(WATCHDOG_SECS, || {
        let len = 2 << 20;
        let source = Gated::new(len, 10_000);
        let mut reader = PrefetchReader::builder()
            .first_request_size(len)
            .max_part_size(len)
            .build(source.clone())
            .expect("reader");
        let mut buf = vec![0; 1000];
        reader.read_exact(&mut buf).expect("read");
        let opener = {
            let source = source.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                source.open_gate();
            })
        };
        reader.seek(SeekFrom::Start(1 << 20)).expect("seek");
        reader
            .read_exact(&mut buf)
            .expect("read past what had arrived");
        assert!(buf == pattern(len as usize)[1 << 20..(1 << 20) + 1000]);
        opener.join().expect("opener");
        let stats = reader.stats();
        assert_eq!((stats.requests, stats.hard_seeks), (1, 0), "{stats:?}");
    });
}

/// A source that commits fewer bytes than the part holds and says `Ok`.
#[derive(Debug)]
struct Short(u64);

impl RangeSource for Short {
    fn len(&self) -> u64 {
        self.0
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
        let half = sink.len() / 2;
        fill_pattern(offset, &mut sink.unfilled()[..half]);
        ctx.add_bytes(half as u64);
        sink.commit(half);
        Ok(())
    }
}

#[test]
fn a_part_that_ends_short_is_truncated_after_the_bytes_that_came() {
    watchdog(WATCHDOG_SECS, || {
        let len = 100_000;
        let mut reader = PrefetchReader::builder()
            .min_part_size(len)
            .first_request_size(len)
            .max_part_size(len)
            .build(Short(len))
            .expect("reader");
        let mut all = Vec::new();
        let err = crate_error(reader.read_to_end(&mut all).expect_err("short"));
        assert!(
            matches!(
                err,
                Error::Truncated {
                    received: 50_000,
                    ..
                }
            ),
            "{err:?}"
        );
        // The bytes before the end of what came are the object's.
        assert!(all == pattern(50_000), "{} bytes read", all.len());
    });
}

/// A source written before streaming: `read_at` alone.
#[derive(Debug)]
struct ReadAtOnly(MemorySource);

impl RangeSource for ReadAtOnly {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.0.read_at(offset, buf, ctx)
    }
}

#[test]
fn a_source_with_only_read_at_reads_whole_parts() {
    watchdog(WATCHDOG_SECS, || {
        let data = pattern(3 << 20);
        let mut reader =
            PrefetchReader::new(ReadAtOnly(MemorySource::new(data.clone()))).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        reader.seek(SeekFrom::Start(12_345)).expect("seek");
        let mut buf = [0; 100];
        reader.read_exact(&mut buf).expect("read");
        assert!(buf[..] == data[12_345..12_445]);
    });
}

#[test]
fn a_seek_to_the_end_of_a_part_still_arriving_keeps_no_stale_window_behind() {
    watchdog(WATCHDOG_SECS, || {
        let source = Gated::new(1 << 20, 1000);
        let mut reader = PrefetchReader::builder()
            .first_request_size(16 * 1024)
            .window_behind(1 << 20)
            .build(source.clone())
            .expect("reader");
        let data = pattern(1 << 20);
        let mut buf = [0; 10];
        reader.read_exact(&mut buf).expect("read");
        // To exactly the end of the first part, of which 1000 bytes came.
        reader.seek(SeekFrom::Start(16 * 1024)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
        assert!(buf[..] == data[16 * 1024..16 * 1024 + 10]);
        // Back into where a window behind would be.
        reader.seek(SeekFrom::Start(16_000)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
        assert!(buf[..] == data[16_000..16_010], "stale bytes behind");
        source.open_gate();
    });
}

/// A source that puts a sink of its own in place of the engine's.
#[derive(Debug)]
struct SwapsSink;

impl RangeSource for SwapsSink {
    fn len(&self) -> u64 {
        1000
    }

    fn read_at(&self, _: u64, buf: &mut [u8], _: &FetchContext) -> Result<()> {
        buf.fill(0);
        Ok(())
    }

    fn read_streaming(&self, _: u64, sink: &mut PartSink<'_>, _: &FetchContext) -> Result<()> {
        *sink = PartSink::new(&mut []);
        Ok(())
    }
}

#[test]
fn a_source_that_replaces_its_sink_gets_truncated_not_a_hang() {
    watchdog(WATCHDOG_SECS, || {
        let mut reader = PrefetchReader::new(SwapsSink).expect("reader");
        let err = crate_error(reader.read(&mut [0; 10]).expect_err("nothing committed"));
        assert!(
            matches!(err, Error::Truncated { received: 0, .. }),
            "{err:?}"
        );
    });
}

/// A source whose `supports_ranges` panics after the reader started.
#[derive(Debug, Default)]
struct PanicsLater(std::sync::atomic::AtomicUsize);

impl RangeSource for PanicsLater {
    fn len(&self) -> u64 {
        1000
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], _: &FetchContext) -> Result<()> {
        fill_pattern(offset, buf);
        Ok(())
    }

    fn supports_ranges(&self) -> bool {
        let calls = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(calls == 0, "a source panicking in supports_ranges");
        true
    }
}

#[test]
fn a_source_panicking_outside_its_read_fails_the_part_instead_of_hanging() {
    watchdog(WATCHDOG_SECS, || {
        let mut reader = PrefetchReader::new(PanicsLater::default()).expect("reader");
        let err = crate_error(reader.read(&mut [0; 10]).expect_err("panicked"));
        assert!(matches!(err, Error::Terminated(_)), "{err:?}");
    });
}
