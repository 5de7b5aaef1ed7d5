//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // each test file uses its own subset

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use prefetch_reader::{PrefetchReader, RangeSource, ReaderBuilder};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `secs`: a hang becomes a failure, without asserting on wall time.
pub fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for more than {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the watched thread panicked"),
    }
}

/// Small settings so that a few hundred KiB span many blocks:
/// first request 1 KiB, parts 4–16 KiB, 8 KiB behind, 128 KiB in all.
pub fn small_blocks() -> ReaderBuilder {
    let mut builder = PrefetchReader::builder();
    builder
        .concurrency(4)
        .first_request_size(KIB)
        .min_part_size(4 * KIB)
        .max_part_size(16 * KIB)
        .window_behind(8 * KIB)
        .max_prefetch(128 * KIB);
    builder
}

/// The crate's error inside an `io::Error` from a read.
pub fn crate_error(err: std::io::Error) -> prefetch_reader::Error {
    prefetch_reader::Error::from_io(err)
}

/// Builds with `builder` over `source`, panicking on an invalid setting.
pub fn build<S: RangeSource>(builder: &ReaderBuilder, source: S) -> PrefetchReader<S> {
    builder.build(source).expect("valid settings")
}
