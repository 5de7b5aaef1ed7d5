//! Model tests: random sequences of reads, seeks and buffered reads run
//! against `PrefetchReader` and against `std::io::Cursor` over the same
//! bytes must give the same bytes, positions and error kinds.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2 000 for the clean
//! model, 300 for the faulty one); `PROPTEST_RNG_SEED=<u64>` fixes the seed
//! to reproduce a run. Every failure found is kept below as a named
//! regression test.

mod common;

use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom};
use std::time::Duration;

use common::{KIB, MIB};
use prefetch_reader::testing::{pattern, ScriptedSource, Step};
use prefetch_reader::{
    Error, MemorySource, PrefetchReader, RangeSource, ReaderBuilder, SharedObject,
};
use proptest::prelude::*;

/// One thing a caller does to a reader.
#[derive(Debug, Clone)]
enum Op {
    Read(usize),
    ReadExact(usize),
    /// `fill_buf`, then `consume` this share (in 1/256ths) of what it gave.
    FillConsume(u8),
    /// `consume(0)` with no `fill_buf` before it (after a seek, say).
    ConsumeNothing,
    Seek(SeekFrom),
    Position,
    /// A pause: until the producer falls quiet, twice.
    Idle,
}

/// Settings for one case, valid or not.
#[derive(Debug, Clone)]
struct Settings {
    concurrency: usize,
    first_request: u64,
    min_part: u64,
    max_part: u64,
    window_behind: u64,
    max_prefetch: u64,
}

impl Settings {
    fn builder(&self) -> ReaderBuilder {
        let mut builder = PrefetchReader::builder();
        builder
            .concurrency(self.concurrency)
            .first_request_size(self.first_request)
            .min_part_size(self.min_part)
            .max_part_size(self.max_part)
            .window_behind(self.window_behind)
            .max_prefetch(self.max_prefetch);
        builder
    }

    /// Whether the settings are valid, by the documented rules.
    fn valid(&self) -> bool {
        self.concurrency >= 1
            && self.first_request >= 1
            && self.min_part >= 1
            && self.min_part <= self.max_part
            && self.first_request <= self.max_part
            && self.max_prefetch >= self.min_part + self.window_behind
    }
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        1usize..=16,
        1u64..=8 * KIB,
        1u64..=32 * KIB,
        0u64..=96 * KIB,
        0u64..=64 * KIB,
        0u64..=512 * KIB,
    )
        .prop_map(
            |(concurrency, first_request, min_part, extra_part, window_behind, extra)| {
                let max_part = (min_part + extra_part).max(first_request);
                Settings {
                    concurrency,
                    first_request,
                    min_part,
                    max_part,
                    window_behind,
                    // Sometimes below min_part + window_behind: invalid.
                    max_prefetch: (min_part + window_behind + extra).saturating_sub(8 * KIB),
                }
            },
        )
}

fn object_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0), Just(1), 2usize..64, 64usize..(2 * MIB as usize),]
}

fn read_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..(16 * KIB as usize),
        2 => 0usize..(256 * KIB as usize),
        1 => 0usize..=(4 * MIB as usize),
    ]
}

fn op(len: usize) -> impl Strategy<Value = Op> {
    let len = len as i64;
    prop_oneof![
        4 => read_size().prop_map(Op::Read),
        2 => read_size().prop_map(Op::ReadExact),
        2 => any::<u8>().prop_map(Op::FillConsume),
        1 => Just(Op::ConsumeNothing),
        1 => Just(Op::Position),
        1 => Just(Op::Idle),
        // Short moves land inside the window ahead or behind; long ones
        // outside; absolute ones anywhere, past EOF included.
        2 => (-70_000i64..70_000).prop_map(|d| Op::Seek(SeekFrom::Current(d))),
        1 => (-(4 * MIB as i64)..(4 * MIB as i64)).prop_map(|d| Op::Seek(SeekFrom::Current(d))),
        1 => (0u64..(len as u64 + 100)).prop_map(|n| Op::Seek(SeekFrom::Start(n))),
        1 => (-(len + 100)..100i64).prop_map(|d| Op::Seek(SeekFrom::End(d))),
    ]
}

fn case() -> impl Strategy<Value = (usize, Settings, Vec<Op>)> {
    (object_len(), settings()).prop_flat_map(|(len, settings)| {
        (
            Just(len),
            Just(settings),
            proptest::collection::vec(op(len), 1..40),
        )
    })
}

/// The error kind of an io result, or the value.
fn outcome<T>(result: io::Result<T>) -> Result<T, io::ErrorKind> {
    result.map_err(|err| err.kind())
}

/// Waits until the producer is quiet (nothing in flight, nothing more to
/// ask for), then again: an idle reader stays quiet, making no request
/// more, and has wasted no more than it fetched.
fn assert_idle_stays_quiet<S: RangeSource>(reader: &PrefetchReader<S>, at: &str) {
    reader.wait_until_quiet().expect("quiet");
    let quiet = reader.stats();
    reader.wait_until_quiet().expect("quiet");
    let later = reader.stats();
    assert_eq!(
        quiet.requests, later.requests,
        "{at}: an idle reader went on fetching"
    );
    assert!(quiet.bytes_wasted <= quiet.bytes_fetched, "{at}: {quiet:?}");
}

/// Runs `ops` on both; panics on the first difference, and as soon as
/// the bytes accounted pass `max_prefetch`.
fn check_against_cursor<S: RangeSource>(
    data: &[u8],
    mut reader: PrefetchReader<S>,
    ops: &[Op],
    max_prefetch: u64,
) {
    check_reader(data, &mut reader, ops, |reader, at| {
        assert_within_budget(reader, max_prefetch, at);
        assert_idle_stays_quiet(reader, at);
        assert_within_budget(reader, max_prefetch, at);
    });
    assert_within_budget(&reader, max_prefetch, "the end");
    reader.close().expect("close");
}

/// The memory accounted (blocks in flight, buffered, spare, and the
/// window behind) never passed the budget.
fn assert_within_budget<S: RangeSource>(reader: &PrefetchReader<S>, max_prefetch: u64, at: &str) {
    let stats = reader.stats();
    assert!(
        stats.peak_allocated <= max_prefetch,
        "{at}: {} bytes accounted, over the {max_prefetch}-byte budget",
        stats.peak_allocated
    );
}

/// Runs `ops` on `reader` and on a `std::io::Cursor` over `data`, `idle`
/// at each pause; panics on the first difference.
fn check_reader<R: BufRead + Seek>(
    data: &[u8],
    reader: &mut R,
    ops: &[Op],
    mut idle: impl FnMut(&R, &str),
) {
    let mut model = Cursor::new(data);
    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step} ({op:?})");
        match op {
            Op::Read(size) => {
                let (mut ours, mut theirs) = (vec![0; *size], vec![0; *size]);
                let a = outcome(reader.read(&mut ours));
                let b = outcome(model.read(&mut theirs));
                assert_eq!(a, b, "{at}");
                if let Ok(n) = a {
                    assert!(ours[..n] == theirs[..n], "{at}: bytes differ");
                }
            }
            Op::ReadExact(size) => {
                let (mut ours, mut theirs) = (vec![0; *size], vec![0; *size]);
                let a = outcome(reader.read_exact(&mut ours));
                let b = outcome(model.read_exact(&mut theirs));
                assert_eq!(a, b, "{at}");
                if a.is_ok() {
                    assert!(ours == theirs, "{at}: bytes differ");
                } else {
                    // std leaves the position after a failed read_exact
                    // unspecified: both go to the end.
                    reader.seek(SeekFrom::End(0)).expect("seek to end");
                    model.seek(SeekFrom::End(0)).expect("seek to end");
                }
            }
            Op::ConsumeNothing => {
                reader.consume(0);
                model.consume(0);
            }
            Op::FillConsume(share) => {
                let ours = reader.fill_buf().expect("fill_buf").to_vec();
                let theirs = model.fill_buf().expect("fill_buf");
                assert_eq!(ours.is_empty(), theirs.is_empty(), "{at}: EOF differs");
                assert!(theirs.starts_with(&ours), "{at}: buffered bytes differ");
                let n = ours.len() * usize::from(*share) / 255;
                reader.consume(n);
                model.consume(n);
            }
            Op::Seek(from) => {
                assert_eq!(
                    outcome(reader.seek(*from)),
                    outcome(model.seek(*from)),
                    "{at}"
                );
            }
            Op::Position => {}
            Op::Idle => idle(reader, &at),
        }
        assert_eq!(
            reader.stream_position().expect("position"),
            model.position(),
            "{at}: positions differ"
        );
    }
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure shrinks within a minute rather than running on.
        max_shrink_time: 60_000,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn reader_matches_a_cursor_over_the_same_bytes((len, settings, ops) in case()) {
        let data = pattern(len);
        match settings.builder().build(MemorySource::new(data.clone())) {
            Ok(reader) => {
                prop_assert!(settings.valid(), "accepted invalid settings {settings:?}");
                check_against_cursor(&data, reader, &ops, settings.max_prefetch);
            }
            Err(err) => {
                prop_assert!(!settings.valid(), "refused valid settings {settings:?}: {err}");
                let is_config = matches!(err, Error::InvalidConfig { .. });
                prop_assert!(is_config, "not a config error: {}", err);
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(500))]

    /// A cursor of a shared object, beside another reading elsewhere and a
    /// hint, reads as `std::io::Cursor` does, whatever the cache's size.
    #[test]
    fn shared_cursors_match_a_cursor_over_the_same_bytes(
        (len, settings, ops) in case(),
        other in 0u64..(4 * MIB),
    ) {
        prop_assume!(settings.valid());
        let data = pattern(len);
        let object = SharedObject::with_settings(MemorySource::new(data.clone()), &settings.builder())
            .expect("valid settings");
        let hint = other..other + 100 * KIB;
        object.will_need(std::slice::from_ref(&hint)).expect("hint");
        let mut beside = object.cursor(other);
        let mut cursor = object.cursor(0);
        check_reader(&data, &mut cursor, &ops, |_, _| {
            let _ = beside.fill_buf().map(|b| b.len());
        });
    }
}

fn faults() -> impl Strategy<Value = (usize, Vec<Step>)> {
    let step = prop_oneof![
        3 => (0u64..3).prop_map(|ms| Step::Delay(Duration::from_millis(ms))),
        1 => Just(Step::Fail),
    ];
    (1usize..5000, proptest::collection::vec(step, 0..30))
}

/// Runs `ops` against a source that fails and stalls at random: every
/// operation either matches the model or fails; a failed one retried
/// continues with the model's bytes.
fn check_with_faults(data: &[u8], mut reader: PrefetchReader<ScriptedSource>, ops: &[Op]) {
    // Each scripted failure is used up by one call: a bounded number of
    // retries always gets through.
    const RETRIES: usize = 100;
    let mut model = Cursor::new(data);
    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step} ({op:?})");
        match op {
            Op::Read(size) => {
                let mut theirs = vec![0; *size];
                let expected = model.read(&mut theirs).expect("model read");
                let mut got = 0;
                let mut ours = vec![0; *size];
                for _ in 0..RETRIES {
                    match reader.read(&mut ours[got..]) {
                        Ok(n) => {
                            got += n;
                            if n == 0 || got == expected {
                                break;
                            }
                        }
                        Err(err) => {
                            assert_eq!(err.kind(), io::ErrorKind::Other, "{at}: {err}");
                        }
                    }
                }
                assert_eq!(got, expected, "{at}: bytes delivered");
                assert!(ours[..got] == theirs[..got], "{at}: bytes differ");
            }
            Op::ReadExact(size) => {
                let start = model.position();
                let mut theirs = vec![0; *size];
                let expected = outcome(model.read_exact(&mut theirs));
                let mut ours = vec![0; *size];
                let mut got = Err(io::ErrorKind::Other);
                for _ in 0..RETRIES {
                    // A failed read_exact leaves the position unspecified.
                    reader.seek(SeekFrom::Start(start)).expect("seek");
                    got = outcome(reader.read_exact(&mut ours));
                    if got != Err(io::ErrorKind::Other) {
                        break;
                    }
                }
                assert_eq!(got, expected, "{at}");
                if got.is_ok() {
                    assert!(ours == theirs, "{at}: bytes differ");
                } else {
                    reader.seek(SeekFrom::End(0)).expect("seek");
                    model.seek(SeekFrom::End(0)).expect("seek");
                }
            }
            Op::ConsumeNothing => {
                reader.consume(0);
                model.consume(0);
            }
            Op::FillConsume(share) => {
                let theirs = model.fill_buf().expect("fill_buf").to_vec();
                let mut ours = None;
                for _ in 0..RETRIES {
                    if let Ok(buf) = reader.fill_buf() {
                        ours = Some(buf.to_vec());
                        break;
                    }
                }
                let ours = ours.expect("fill_buf succeeds once the faults are used up");
                assert_eq!(ours.is_empty(), theirs.is_empty(), "{at}: EOF differs");
                assert!(theirs.starts_with(&ours), "{at}: buffered bytes differ");
                let n = ours.len() * usize::from(*share) / 255;
                reader.consume(n);
                model.consume(n);
            }
            Op::Seek(from) => {
                assert_eq!(
                    outcome(reader.seek(*from)),
                    outcome(model.seek(*from)),
                    "{at}"
                );
            }
            Op::Position => {}
            Op::Idle => assert_idle_stays_quiet(&reader, &at),
        }
        assert_eq!(
            reader.stream_position().expect("position"),
            model.position(),
            "{at}: positions differ"
        );
    }
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn reader_over_a_faulty_source_never_returns_a_wrong_byte(
        (len, settings, ops) in case(),
        (chunk, script) in faults(),
    ) {
        prop_assume!(settings.valid());
        let data = pattern(len);
        let source = ScriptedSource::new(len as u64, chunk, script);
        let reader = settings.builder().build(source).expect("valid settings");
        check_with_faults(&data, reader, &ops);
    }
}
