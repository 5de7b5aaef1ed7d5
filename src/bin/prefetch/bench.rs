//! `prefetch bench`: plain range reads against `PrefetchReader`, over a
//! local server with a simulated link (or over a real object), in one run.
//!
//! The measurement follows `benches/links.rs`, but over HTTP: the crate's
//! test server with a delay before every response and a cap on each
//! connection's rate, read through [`HttpSource`](prefetch_reader::HttpSource)
//! as any user's URL would be.
//!
//! - **ceiling**: what the server carries at all: `concurrency` threads
//!   fetching large parts in parallel from a second server over the same
//!   bytes with no latency and no cap (the faster of two runs). The link
//!   limit is the lower of `concurrency × bandwidth` and this. Over a real
//!   object, the same parallel download over its link is the limit.
//! - **plain**: one range request per read, of the read size, in order
//!   from offset 0; time-boxed, the rate reported. What code without a
//!   prefetcher gets.
//! - **prefetch**: `PrefetchReader` reading the object in reads of the
//!   read size.
//! - **random-plain**, **random-prefetch**: reads of 64 KiB at seeded
//!   pseudo-random offsets, with one range request each, and with the
//!   reader's `seek` + `read_exact`.
//!
//! Then the access patterns of consumers that read little of the object,
//! each through a `PrefetchReader` left at the default advice
//! ([`Advice::Normal`]), where the figure that matters is bytes fetched ÷
//! bytes needed (`fetch/dlv`), held against a budget:
//!
//! - **random-4k**: the random reads again, of 4 KiB; budget 4× needed.
//! - **header-idle**: a seek to the middle, three reads of 8 bytes, then
//!   200 ms idle; budget 256 KiB.
//! - **members**: three seeks to seeded offsets, 1 MiB read after each in
//!   reads of 16 KiB, as an archive's members are read; budget 2× needed.
//! - **members-hinted**: the same, the members named first with
//!   `will_need`; same budget.
//! - **first-mib-drop**: the first 1 MiB in reads of 64 KiB, then the
//!   reader dropped (and its abandoned requests waited for); budget 2×
//!   needed.
//! - **eof-probe**: a seek to the end and a read there, which returns
//!   nothing; budget 0 bytes.
//! - **footer**: the last 8 bytes, then the 40 KiB before them in one
//!   read, as a parquet reader finds its footer; budget 2× needed.
//! - **footer-tail**: the same, opened with the object's last 64 KiB in
//!   the open's own request (`OpenOptions::tail`): one request in all.
//!
//! Every row but the ceiling checks the bytes it reads against the
//! generated pattern, so no figure comes from wrong data. Every clock starts before the object is
//! opened, so opening, the first round trips and the ramp are all in the
//! figures.

use std::fmt::Write as _;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prefetch_reader::testing::{fill_pattern, pattern_byte, TestServer};
use prefetch_reader::{
    open_source, Advice, FetchContext, PrefetchReader, RangeSource, Stats, DEFAULT_TAIL,
};

use crate::error::{read_error, stdout_error, Error, Result};
use crate::options::ReadOptions;
use crate::serve::parse_bandwidth;
use crate::units::{mib_per_sec, parse_positive_size, short_size, GIB, KIB, MIB};

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch bench                                   the default run: 20 ms, 25 MiB/s per connection, 256 MiB
  prefetch bench --latency-ms 50 --bandwidth 10    a slower link
  prefetch bench --read-sizes 4K,1M --size 1G
  prefetch bench --json | jq .                     one JSON object per row
  prefetch bench https://example.com/big.bin --size 512M   a real object (its first 512 MiB)

Rows: `ceiling` is what the link carries with `concurrency` parallel requests
of large parts (over a local server: one with no latency or cap); `plain` is
one range request per read (time-boxed); `prefetch` is PrefetchReader;
`random-*` are seeded random reads. The access patterns read through
PrefetchReader at the default advice and are judged by the bytes they fetch
against a budget: `random-4k` (random 4 KiB reads; budget 4x needed),
`header-idle` (three 8-byte reads in the middle, then 200 ms idle; 256 KiB),
`members` (three 1 MiB reads at random offsets, in 16 KiB reads; 2x),
`members-hinted` (the same, named first with `will_need`; 2x),
`first-mib-drop` (the first 1 MiB in 64 KiB reads, then drop; 2x) and
`eof-probe` (a read at the end; 0 bytes), `footer` (the last 8 bytes,
then the 40 KiB before them; 2x) and `footer-tail` (the same, the open
bringing the last 64 KiB; 2x). Columns: MiB/s over the whole run, reads/s, ms until the
first read returned (clock started before opening), range requests, bytes
fetched / bytes delivered (needed), the ratios to the link limit (min of
concurrency x bandwidth and the ceiling) and to plain reads of the same
size, bytes fetched, and the budget (marked `!` when exceeded).";

/// The path of the generated object on the local servers.
const OBJECT_PATH: &str = "/bench.bin";

/// The default generated object: 256 MiB.
const DEFAULT_SIZE: u64 = 256 * MIB;

/// Seed of the random offsets: fixed, so every run reads the same ones.
const RANDOM_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Largest part of the ceiling measurement: big enough that round trips
/// are a small share of each request.
const CEILING_PART: u64 = 16 * MIB;

/// Smallest part of the ceiling measurement, for small objects.
const CEILING_MIN_PART: u64 = 256 * KIB;

/// Size of the reads of `random-4k`: a page, what databases and indexes
/// read at random.
const SMALL_RANDOM_SIZE: u64 = 4 * KIB;

/// Budget of `random-4k`, in bytes needed: one first request
/// ([`DEFAULT_FIRST_REQUEST_SIZE`](prefetch_reader::DEFAULT_FIRST_REQUEST_SIZE),
/// 16 KiB) per 4 KiB read is already 4×.
const SMALL_RANDOM_BUDGET: u64 = 4;

/// `header-idle`: a format sniffer's reads (magic, version, length).
const HEADER_READ: u64 = 8;
const HEADER_READS: u64 = 3;

/// Budget of `header-idle`: a request or two of the first size, never
/// read-ahead.
const HEADER_BUDGET: u64 = 256 * KIB;

/// How long `header-idle`, `members` and `eof-probe` leave the reader
/// idle before counting: ten round trips at the default 20 ms, long enough for what
/// the reads set off to arrive.
const IDLE: Duration = Duration::from_millis(200);

/// `members`: three members of an archive, read in a decompressor's
/// reads.
const MEMBERS: usize = 3;
const MEMBER_SIZE: u64 = MIB;
const MEMBER_READ: u64 = 16 * KIB;

/// `first-mib-drop`: the first MiB, as a caller that stops early.
const FIRST_SPAN: u64 = MIB;
const FIRST_READ: u64 = 64 * KIB;

/// `footer`: a parquet file's footer and the metadata it points back to.
const FOOTER_END: u64 = 8;
const FOOTER_SPAN: u64 = 40 * KIB;

/// Budget of `members`, `first-mib-drop` and `footer`, in bytes needed: read-ahead
/// may cost as much again as was read, not more.
const SPAN_BUDGET: u64 = 2;

/// `eof-probe`: the buffer of the read at the end.
const EOF_PROBE_READ: u64 = 64 * KIB;

/// Most time to wait, after dropping a reader, for the requests it
/// abandoned to end; past it the row counts what arrived so far.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often to look whether they have.
const SETTLE_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Measure this object (URL or path) instead of a local server with a
    /// simulated link.
    #[arg(value_name = "LOCATION")]
    location: Option<String>,

    /// Simulated delay before every response, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 20,
        conflicts_with = "location"
    )]
    latency_ms: u64,

    /// Simulated bandwidth of each connection, in MiB/s.
    #[arg(long, value_name = "MIB_PER_SEC", default_value = "25",
          value_parser = parse_bandwidth, conflicts_with = "location")]
    bandwidth: u64,

    /// Size of the generated object [default: 256M]; with LOCATION, read at
    /// most this much of it [default: all of it] (what read-ahead fetched
    /// past it counts in fetch/dlv).
    #[arg(long, value_name = "SIZE", value_parser = parse_positive_size)]
    size: Option<u64>,

    /// Read sizes of the sequential rows.
    #[arg(long, value_name = "SIZES", value_delimiter = ',',
          default_value = "8K,64K,1M,16M", value_parser = parse_positive_size)]
    read_sizes: Vec<u64>,

    /// Reads of the random rows (0 skips them).
    #[arg(long, value_name = "N", default_value_t = 200)]
    random_reads: usize,

    /// Size of each random read.
    #[arg(long, value_name = "SIZE", default_value = "64K", value_parser = parse_positive_size)]
    random_size: u64,

    /// Time box of each plain sequential row, in seconds (at least two
    /// reads are made).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0,
          value_parser = parse_seconds)]
    plain_seconds: f64,

    /// The advice the sequential `prefetch` rows read with: sequential
    /// (full read-ahead from the first read, as `cat` and `get` read) or
    /// normal (read-ahead earned by what the reader consumed, the library's
    /// default).
    #[arg(long, value_name = "ADVICE", default_value = "sequential",
          value_parser = parse_advice)]
    advice: Advice,

    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    read: ReadOptions,
}

fn parse_advice(text: &str) -> std::result::Result<Advice, String> {
    match text {
        "sequential" => Ok(Advice::Sequential),
        "normal" => Ok(Advice::Normal),
        _ => Err(format!("`{text}`: expected sequential or normal")),
    }
}

fn parse_seconds(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds")),
    }
}

/// What is measured: a local server's object, or the user's.
struct Target {
    location: String,
    /// Bytes of the object read by the sequential rows.
    len: u64,
    /// Bytes of the whole object, where the random rows and the access
    /// patterns read.
    object_len: u64,
    /// Whether the bytes are the test pattern (checked as they are read).
    generated: bool,
    /// `concurrency × bandwidth`, over a simulated link.
    nominal_limit: Option<f64>,
}

/// One line of the report.
#[derive(Debug, Default, Clone)]
struct Row {
    case: &'static str,
    read: u64,
    bytes: u64,
    reads: u64,
    elapsed: Duration,
    ttfb: Option<Duration>,
    requests: u64,
    fetched: u64,
    delivered: u64,
    vs_link: Option<f64>,
    vs_plain: Option<f64>,
    /// The most bytes the row should fetch, for the access patterns.
    budget: Option<u64>,
    /// The reader's peak allocated bytes (`Stats::peak_allocated`).
    peak: Option<u64>,
}

impl Row {
    fn rate(&self) -> f64 {
        mib_per_sec(self.bytes, self.elapsed.as_secs_f64())
    }

    fn reads_per_sec(&self) -> f64 {
        self.reads as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn fetched_per_delivered(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.fetched as f64 / self.delivered as f64)
    }

    /// Whether the row fetched no more than its budget, if it has one.
    fn within_budget(&self) -> Option<bool> {
        self.budget.map(|budget| self.fetched <= budget)
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let concurrency = args.read.concurrency;
    // The local servers live until the end of the run.
    let (target, ceiling, _server) = match &args.location {
        Some(location) => {
            let object_len = open_source(location)?.len();
            let len = args.size.map_or(object_len, |size| size.min(object_len));
            let target = Target {
                location: location.clone(),
                len,
                object_len,
                generated: false,
                nominal_limit: None,
            };
            let ceiling = ceiling(&target.location, len, concurrency)?;
            (target, ceiling, None)
        }
        None => {
            let len = args.size.unwrap_or(DEFAULT_SIZE);
            let data = generate(len, None)?;
            let ceiling = {
                let server = start_server(generate(len, Some(&data))?, None)?;
                let url = server.url(OBJECT_PATH);
                // The faster of two: a limit is an upper bound, and one run
                // is at the mercy of whatever else the machine is doing.
                let first = ceiling(&url, len, concurrency)?;
                let second = ceiling(&url, len, concurrency)?;
                if first.rate() >= second.rate() {
                    first
                } else {
                    second
                }
            };
            let server = start_server(data, Some((args.latency_ms, args.bandwidth)))?;
            let target = Target {
                location: server.url(OBJECT_PATH),
                len,
                object_len: len,
                generated: true,
                nominal_limit: Some(concurrency as f64 * args.bandwidth as f64 / MIB as f64),
            };
            (target, ceiling, Some(server))
        }
    };
    let limit = match target.nominal_limit {
        Some(nominal) => nominal.min(ceiling.rate()),
        None => ceiling.rate(),
    };
    let mut report = Report::new(args, &target, limit);
    report.header(args, &target, limit)?;
    report.row(Row {
        vs_link: Some(ceiling.rate() / limit),
        ..ceiling
    })?;

    let mut plain_rates = Vec::new();
    for &read in &args.read_sizes {
        let mut row = plain(&target, read, Duration::from_secs_f64(args.plain_seconds))?;
        row.vs_link = Some(row.rate() / limit);
        row.vs_plain = Some(1.0);
        plain_rates.push((read, row.rate()));
        report.row(row)?;
    }
    for &read in &args.read_sizes {
        let mut row = prefetch(&target, read, &args.read, args.advice)?;
        row.vs_link = Some(row.rate() / limit);
        row.vs_plain = plain_rates
            .iter()
            .find(|(r, _)| *r == read)
            .map(|(_, plain)| row.rate() / plain);
        report.row(row)?;
    }
    if args.random_reads > 0 {
        // Random offsets span the whole object, not only the part read.
        let len = target.object_len;
        let size = args.random_size.min(len);
        let offsets = random_offsets(len, size, args.random_reads);
        let mut plain = random_plain(&target, &offsets, size)?;
        plain.vs_link = Some(plain.rate() / limit);
        plain.vs_plain = Some(1.0);
        let plain_rate = plain.rate();
        report.row(plain)?;
        let mut row = random_prefetch("random-prefetch", &target, &offsets, size, &args.read)?;
        row.vs_link = Some(row.rate() / limit);
        row.vs_plain = Some(row.rate() / plain_rate);
        report.row(row)?;
        report.row(random_4k(&target, args.random_reads, &args.read)?)?;
    }
    report.row(header_idle(&target, &args.read)?)?;
    report.row(members(&target, &args.read)?)?;
    report.row(members_hinted(&target, &args.read)?)?;
    report.row(first_mib_drop(&target, &args.read)?)?;
    report.row(eof_probe(&target, &args.read)?)?;
    report.row(footer(&target, &args.read, false)?)?;
    report.row(footer(&target, &args.read, true)?)?;
    report.footer(started.elapsed())
}

/// `len` bytes of the test pattern (or a copy of `like`), or an error
/// rather than an abort when there is not enough memory for them.
fn generate(len: u64, like: Option<&[u8]>) -> Result<Vec<u8>> {
    let too_large = || Error::msg(format_args!("--size {len}: not enough memory for it"));
    let n = usize::try_from(len).map_err(|_| too_large())?;
    let mut data = Vec::new();
    data.try_reserve_exact(n).map_err(|_| too_large())?;
    match like {
        Some(bytes) => data.extend_from_slice(bytes),
        None => {
            data.resize(n, 0);
            fill_pattern(0, &mut data);
        }
    }
    Ok(data)
}

/// A local server over `data`, with a simulated link if given one
/// (latency in ms, bytes per second per connection).
fn start_server(data: Vec<u8>, link: Option<(u64, u64)>) -> Result<TestServer> {
    let mut builder = TestServer::builder();
    if let Some((latency_ms, bandwidth)) = link {
        builder
            .latency(Duration::from_millis(latency_ms))
            .bandwidth(bandwidth);
    }
    let server = builder
        .build()
        .map_err(|err| Error::msg(format_args!("cannot start the local server: {err}")))?;
    server.put_object(OBJECT_PATH, data);
    log::info!("local server at {}", server.url(OBJECT_PATH));
    Ok(server)
}

/// Whether the bytes read at `offset` are the generated ones (one byte per
/// read is enough to catch a block out of place).
fn check(target: &Target, offset: u64, buf: &[u8]) -> Result<()> {
    match buf.first() {
        Some(&byte) if target.generated && byte != pattern_byte(offset) => {
            Err(Error::msg(format_args!(
                "{}: wrong byte at offset {offset}",
                prefetch_reader::redact(&target.location)
            )))
        }
        _ => Ok(()),
    }
}

/// `concurrency` threads fetching the first `len` bytes in large parts,
/// each taking the next part as it finishes one.
fn ceiling(location: &str, len: u64, concurrency: usize) -> Result<Row> {
    let started = Instant::now();
    let source = open_source(location)?;
    source.set_concurrency(concurrency);
    // Whole 64 KiB units, so the part size reads well in the table.
    let part = (len / concurrency as u64)
        .div_ceil(64 * KIB)
        .saturating_mul(64 * KIB)
        .clamp(CEILING_MIN_PART, CEILING_PART);
    let next = AtomicU64::new(0);
    let requests = AtomicU64::new(0);
    let fetch = || -> Result<()> {
        let mut buf = vec![0; usize::try_from(part.min(len)).unwrap_or(0)];
        let ctx = FetchContext::new();
        loop {
            let offset = next.fetch_add(part, Ordering::Relaxed);
            if offset >= len {
                return Ok(());
            }
            let n = part.min(len - offset) as usize;
            source.read_at(offset, &mut buf[..n], &ctx)?;
            requests.fetch_add(1, Ordering::Relaxed);
        }
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency).map(|_| scope.spawn(fetch)).collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(Error::msg("a download thread panicked")))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    let elapsed = started.elapsed();
    let requests = requests.into_inner();
    Ok(Row {
        case: "ceiling",
        read: part,
        bytes: len,
        reads: requests,
        elapsed,
        ttfb: None,
        requests,
        fetched: len,
        delivered: len,
        ..Row::default()
    })
}

/// One range request per read, in order from offset 0, until the time box
/// is spent (at least two reads) or the object ends.
fn plain(target: &Target, read: u64, time_box: Duration) -> Result<Row> {
    let started = Instant::now();
    let source = open_source(&target.location)?;
    let ctx = FetchContext::new();
    let mut buf = vec![0; usize::try_from(read.min(target.len)).unwrap_or(0)];
    let (mut offset, mut reads, mut ttfb) = (0, 0, None);
    while offset < target.len && (reads < 2 || started.elapsed() < time_box) {
        let n = read.min(target.len - offset) as usize;
        source.read_at(offset, &mut buf[..n], &ctx)?;
        ttfb.get_or_insert_with(|| started.elapsed());
        check(target, offset, &buf[..n])?;
        offset += n as u64;
        reads += 1;
    }
    Ok(Row {
        case: "plain",
        read,
        bytes: offset,
        reads,
        elapsed: started.elapsed(),
        ttfb,
        requests: reads,
        fetched: ctx.bytes_received(),
        delivered: offset,
        ..Row::default()
    })
}

/// `PrefetchReader` reading the object in reads of `read` bytes, with
/// `advice`.
fn prefetch(target: &Target, read: u64, options: &ReadOptions, advice: Advice) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    reader.advise(advice);
    let mut buf = vec![0; usize::try_from(read.min(target.len)).unwrap_or(0)];
    let (mut offset, mut reads, mut ttfb) = (0, 0, None);
    while offset < target.len {
        let want = read.min(target.len - offset) as usize;
        let n = reader
            .read(&mut buf[..want])
            .map_err(|err| read_error(&target.location, err))?;
        if n == 0 {
            return Err(Error::msg(format_args!(
                "{}: ended at offset {offset}, before its length",
                prefetch_reader::redact(&target.location)
            )));
        }
        ttfb.get_or_insert_with(|| started.elapsed());
        check(target, offset, &buf[..n])?;
        offset += n as u64;
        reads += 1;
    }
    let elapsed = started.elapsed();
    let stats = reader.stats();
    log::info!("prefetch {}: {stats:?}", short_size(read));
    Ok(Row {
        case: "prefetch",
        read,
        bytes: offset,
        reads,
        elapsed,
        ttfb,
        requests: stats.requests,
        fetched: stats.bytes_fetched,
        delivered: stats.bytes_delivered,
        peak: Some(stats.peak_allocated),
        ..Row::default()
    })
}

/// `n` seeded offsets for reads of `size` in an object of `len` bytes.
fn random_offsets(len: u64, size: u64, n: usize) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(RANDOM_SEED);
    (0..n).map(|_| rng.u64(0..=len - size)).collect()
}

/// One range request per read of `size` at each of `offsets`.
fn random_plain(target: &Target, offsets: &[u64], size: u64) -> Result<Row> {
    let started = Instant::now();
    let source = open_source(&target.location)?;
    let ctx = FetchContext::new();
    let mut buf = vec![0; usize::try_from(size).unwrap_or(0)];
    let mut ttfb = None;
    for &offset in offsets {
        source.read_at(offset, &mut buf, &ctx)?;
        ttfb.get_or_insert_with(|| started.elapsed());
        check(target, offset, &buf)?;
    }
    let reads = offsets.len() as u64;
    Ok(Row {
        case: "random-plain",
        read: size,
        bytes: reads * size,
        reads,
        elapsed: started.elapsed(),
        ttfb,
        requests: reads,
        fetched: ctx.bytes_received(),
        delivered: reads * size,
        ..Row::default()
    })
}

/// `PrefetchReader`'s `seek` + `read_exact` of `size` at each of
/// `offsets`, at the default advice; the row is called `case`.
fn random_prefetch(
    case: &'static str,
    target: &Target,
    offsets: &[u64],
    size: u64,
    options: &ReadOptions,
) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    let mut buf = vec![0; usize::try_from(size).unwrap_or(0)];
    let mut ttfb = None;
    for &offset in offsets {
        reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| reader.read_exact(&mut buf))
            .map_err(|err| read_error(&target.location, err))?;
        ttfb.get_or_insert_with(|| started.elapsed());
        check(target, offset, &buf)?;
    }
    let elapsed = started.elapsed();
    let stats = reader.stats();
    log::info!("{case}: {stats:?}");
    let reads = offsets.len() as u64;
    Ok(Row {
        case,
        read: size,
        bytes: reads * size,
        reads,
        elapsed,
        ttfb,
        requests: stats.requests,
        fetched: stats.bytes_fetched,
        delivered: stats.bytes_delivered,
        peak: Some(stats.peak_allocated),
        ..Row::default()
    })
}

/// `n` reads of 4 KiB at seeded offsets, as a database reads pages.
fn random_4k(target: &Target, n: usize, options: &ReadOptions) -> Result<Row> {
    let size = SMALL_RANDOM_SIZE.min(target.object_len);
    let offsets = random_offsets(target.object_len, size, n);
    let row = random_prefetch("random-4k", target, &offsets, size, options)?;
    Ok(Row {
        budget: Some(row.delivered.saturating_mul(SMALL_RANDOM_BUDGET)),
        ..row
    })
}

/// A seek to the middle, three small reads, then idle: a tool that sniffs
/// a header and goes quiet. What the reader fetches by itself meanwhile
/// counts.
fn header_idle(target: &Target, options: &ReadOptions) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    let len = target.object_len;
    let needed = (HEADER_READ * HEADER_READS).min(len);
    let offset = (len / 2).min(len - needed);
    seek(&mut reader, target, SeekFrom::Start(offset))?;
    let span = read_span(&mut reader, target, offset, needed, HEADER_READ, started)?;
    std::thread::sleep(IDLE);
    let stats = reader.stats();
    Ok(span.row("header-idle", started, &stats, HEADER_BUDGET))
}

/// Three seeks to seeded offsets, a member of 1 MiB read in 16 KiB reads
/// after each, as an archive reader extracts members. The last member's
/// read-ahead counts as it arrives in the idle time after it.
fn members(target: &Target, options: &ReadOptions) -> Result<Row> {
    members_with(target, options, false)
}

/// The members again, named to the reader first with `will_need`, as an
/// archive reader that read the central directory can.
fn members_hinted(target: &Target, options: &ReadOptions) -> Result<Row> {
    members_with(target, options, true)
}

fn members_with(target: &Target, options: &ReadOptions, hinted: bool) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    let size = MEMBER_SIZE.min(target.object_len);
    let offsets = random_offsets(target.object_len, size, MEMBERS);
    if hinted {
        let ranges: Vec<_> = offsets.iter().map(|&o| o..o + size).collect();
        reader
            .will_need(&ranges)
            .map_err(|err| read_error(&target.location, err.into()))?;
    }
    let mut total = Span::default();
    for offset in offsets {
        seek(&mut reader, target, SeekFrom::Start(offset))?;
        let span = read_span(&mut reader, target, offset, size, MEMBER_READ, started)?;
        total.add(&span);
    }
    std::thread::sleep(IDLE);
    let stats = reader.stats();
    let budget = total.bytes.saturating_mul(SPAN_BUDGET);
    let case = if hinted { "members-hinted" } else { "members" };
    Ok(total.row(case, started, &stats, budget))
}

/// The first MiB in 64 KiB reads, then the reader dropped: a caller that
/// stops early. What requests abandoned at the drop had received counts.
fn first_mib_drop(target: &Target, options: &ReadOptions) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    let needed = FIRST_SPAN.min(target.object_len);
    let span = read_span(&mut reader, target, 0, needed, FIRST_READ, started)?;
    let stats = drop_and_settle(reader);
    let budget = span.bytes.saturating_mul(SPAN_BUDGET);
    Ok(span.row("first-mib-drop", started, &stats, budget))
}

/// A seek to the end and a read there, which returns nothing: a caller
/// probing the length. Nothing needs fetching, before or in the idle time
/// after.
fn eof_probe(target: &Target, options: &ReadOptions) -> Result<Row> {
    let started = Instant::now();
    let mut reader = options.open(&target.location)?;
    let end = seek(&mut reader, target, SeekFrom::End(0))?;
    let mut buf = vec![0; usize::try_from(EOF_PROBE_READ).unwrap_or(0)];
    let n = reader
        .read(&mut buf)
        .map_err(|err| read_error(&target.location, err))?;
    let ttfb = started.elapsed();
    if n != 0 {
        return Err(Error::msg(format_args!(
            "{}: read {n} bytes at its end (offset {end})",
            prefetch_reader::redact(&target.location)
        )));
    }
    std::thread::sleep(IDLE);
    let stats = reader.stats();
    let span = Span {
        read: EOF_PROBE_READ,
        bytes: 0,
        reads: 1,
        ttfb: Some(ttfb),
    };
    Ok(span.row("eof-probe", started, &stats, 0))
}

/// The last [`FOOTER_END`] bytes, then the [`FOOTER_SPAN`] before them in
/// one read, as a parquet reader finds its footer then its metadata; with
/// `tail`, the open's own request brings the object's last
/// [`DEFAULT_TAIL`] bytes.
fn footer(target: &Target, options: &ReadOptions, tail: bool) -> Result<Row> {
    let started = Instant::now();
    let mut reader = if tail {
        let source = options
            .open_options()
            .tail(DEFAULT_TAIL)
            .open_source(&target.location)?;
        options.builder().build(source)?
    } else {
        options.open(&target.location)?
    };
    let len = target.object_len;
    let end = FOOTER_END.min(len);
    let span = FOOTER_SPAN.min(len - end);
    seek(&mut reader, target, SeekFrom::End(-(end as i64)))?;
    let mut total = read_span(&mut reader, target, len - end, end, end, started)?;
    let before = len - end - span;
    seek(&mut reader, target, SeekFrom::Start(before))?;
    total.add(&read_span(
        &mut reader,
        target,
        before,
        span,
        span,
        started,
    )?);
    let stats = reader.stats();
    let budget = total.bytes.saturating_mul(SPAN_BUDGET);
    let case = if tail { "footer-tail" } else { "footer" };
    Ok(total.row(case, started, &stats, budget))
}

/// `reader.seek(to)`, its error naming the object.
fn seek(reader: &mut PrefetchReader, target: &Target, to: SeekFrom) -> Result<u64> {
    reader
        .seek(to)
        .map_err(|err| read_error(&target.location, err))
}

/// What an access pattern read, towards its row.
#[derive(Debug, Default, Clone)]
struct Span {
    /// The size of each read.
    read: u64,
    /// Bytes read: the bytes the pattern needed.
    bytes: u64,
    reads: u64,
    /// Time from `started` until the first read returned.
    ttfb: Option<Duration>,
}

impl Span {
    /// Counts `other` in with this one (the first read's time stays).
    fn add(&mut self, other: &Span) {
        self.read = other.read;
        self.bytes += other.bytes;
        self.reads += other.reads;
        self.ttfb = self.ttfb.or(other.ttfb);
    }

    /// The row: these reads, `stats`' requests and bytes fetched against
    /// the bytes needed, and `budget`.
    fn row(&self, case: &'static str, started: Instant, stats: &Stats, budget: u64) -> Row {
        log::info!("{case}: {stats:?}");
        Row {
            case,
            read: self.read,
            bytes: self.bytes,
            reads: self.reads,
            elapsed: started.elapsed(),
            ttfb: self.ttfb,
            requests: stats.requests,
            fetched: stats.bytes_fetched,
            delivered: self.bytes,
            budget: Some(budget),
            peak: Some(stats.peak_allocated),
            ..Row::default()
        }
    }
}

/// Reads `len` bytes from the reader's position, `offset`, in reads of
/// `read` bytes, checking each.
fn read_span(
    reader: &mut PrefetchReader,
    target: &Target,
    offset: u64,
    len: u64,
    read: u64,
    started: Instant,
) -> Result<Span> {
    let mut buf = vec![0; usize::try_from(read.min(len)).unwrap_or(0)];
    let mut span = Span {
        read,
        ..Span::default()
    };
    while span.bytes < len {
        let at = offset + span.bytes;
        let n = read.min(len - span.bytes) as usize;
        reader
            .read_exact(&mut buf[..n])
            .map_err(|err| read_error(&target.location, err))?;
        span.ttfb.get_or_insert_with(|| started.elapsed());
        check(target, at, &buf[..n])?;
        span.bytes += n as u64;
        span.reads += 1;
    }
    Ok(span)
}

/// Drops `reader` and waits (at most [`SETTLE_TIMEOUT`]) for the requests
/// it abandoned to end, which is when its blocks' memory is all freed:
/// then its counters have stopped moving.
fn drop_and_settle(reader: PrefetchReader) -> Stats {
    let handle = reader.stats_handle();
    drop(reader);
    let started = Instant::now();
    loop {
        let stats = handle.get();
        if stats.allocated == 0 && stats.requests_in_flight == 0 {
            return stats;
        }
        if started.elapsed() >= SETTLE_TIMEOUT {
            log::warn!(
                "{} bytes still allocated {} s after the reader was dropped",
                stats.allocated,
                SETTLE_TIMEOUT.as_secs_f64()
            );
            return stats;
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// Prints rows as they are measured: a table, or JSON lines.
struct Report {
    json: bool,
    /// Fields repeated in every JSON row.
    context: String,
}

impl Report {
    fn new(args: &Args, target: &Target, limit: f64) -> Report {
        let mut context = String::new();
        let _ = write!(
            context,
            "\"object\":{},\"object_bytes\":{},\"concurrency\":{},\"link_limit_mib_per_s\":{}",
            json_string(&target.location),
            target.len,
            args.read.concurrency,
            json_number(Some(limit)),
        );
        if target.generated {
            let _ = write!(
                context,
                ",\"latency_ms\":{},\"bandwidth_mib_per_s\":{}",
                args.latency_ms,
                json_number(Some(args.bandwidth as f64 / MIB as f64))
            );
        }
        Report {
            json: args.json,
            context,
        }
    }

    /// Writes `text` to stdout at once, so rows show as they are measured.
    fn emit(&self, text: &str) -> Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(stdout_error)
    }

    fn header(&self, args: &Args, target: &Target, limit: f64) -> Result<()> {
        if self.json {
            return Ok(());
        }
        let mut text = String::new();
        let concurrency = args.read.concurrency;
        if target.generated {
            let _ = writeln!(
                text,
                "local server over loopback: {} ms latency, {} MiB/s per connection, {} MiB object, concurrency {concurrency}",
                args.latency_ms,
                fmt_float(args.bandwidth as f64 / MIB as f64),
                fmt_float(target.len as f64 / MIB as f64),
            );
            let _ = writeln!(
                text,
                "link limit {limit:.1} MiB/s: min of {concurrency} x {} MiB/s and the ceiling (the same server with no latency or cap)",
                fmt_float(args.bandwidth as f64 / MIB as f64),
            );
        } else {
            let _ = writeln!(
                text,
                "{}: {} MiB read, concurrency {concurrency}",
                target.location,
                fmt_float(target.len as f64 / MIB as f64)
            );
            let _ = writeln!(
                text,
                "link limit {limit:.1} MiB/s: the ceiling ({concurrency} parallel requests of large parts)"
            );
        }
        text.push('\n');
        let _ = writeln!(
            text,
            "{:<16} {:>6} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>7} {:>7} {:>10} {:>7} {:>7}",
            "case",
            "read",
            "MiB/s",
            "reads/s",
            "ttfb_ms",
            "requests",
            "fetch/dlv",
            "/link",
            "/plain",
            "secs",
            "fetched",
            "budget",
            "peak"
        );
        self.emit(&text)
    }

    fn row(&mut self, row: Row) -> Result<()> {
        if self.json {
            return self.emit(&format!(
                "{{\"case\":\"{}\",\"read_bytes\":{},\"bytes\":{},\"reads\":{},\"seconds\":{},\"mib_per_s\":{},\"reads_per_s\":{},\"ttfb_ms\":{},\"requests\":{},\"fetched_bytes\":{},\"delivered_bytes\":{},\"fetched_per_delivered\":{},\"budget_bytes\":{},\"within_budget\":{},\"vs_link\":{},\"vs_plain\":{},\"peak_allocated_bytes\":{},{}}}\n",
                row.case,
                row.read,
                row.bytes,
                row.reads,
                json_number(Some(row.elapsed.as_secs_f64())),
                json_number(Some(row.rate())),
                json_number(Some(row.reads_per_sec())),
                json_number(row.ttfb.map(|t| t.as_secs_f64() * 1e3)),
                row.requests,
                row.fetched,
                row.delivered,
                json_number(row.fetched_per_delivered()),
                row.budget.map_or_else(|| "null".to_owned(), |b| b.to_string()),
                row.within_budget()
                    .map_or_else(|| "null".to_owned(), |ok| ok.to_string()),
                json_number(row.vs_link),
                json_number(row.vs_plain),
                row.peak.map_or_else(|| "null".to_owned(), |b| b.to_string()),
                self.context,
            ));
        }
        let or_dash = |value: Option<f64>, precision: usize| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
        };
        self.emit(&format!(
            "{:<16} {:>6} {:>9.1} {:>9.1} {:>8} {:>8} {:>9} {:>6} {:>7} {:>7.2} {:>10} {:>7} {:>7}\n",
            row.case,
            short_size(row.read),
            row.rate(),
            row.reads_per_sec(),
            or_dash(row.ttfb.map(|t| t.as_secs_f64() * 1e3), 1),
            row.requests,
            or_dash(row.fetched_per_delivered(), 3),
            or_dash(row.vs_link, 2),
            or_dash(row.vs_plain, 2),
            row.elapsed.as_secs_f64(),
            short_size_rounded(row.fetched),
            budget_cell(&row),
            row.peak.map_or_else(|| "-".to_owned(), short_size_rounded),
        ))
    }

    fn footer(&self, elapsed: Duration) -> Result<()> {
        if self.json {
            return Ok(());
        }
        self.emit(&format!("\nfinished in {:.1} s\n", elapsed.as_secs_f64()))
    }
}

/// `256K`, `2M!`: the budget, marked `!` when the row fetched more, or
/// `-` for a row without one. One word, so the table splits on spaces.
fn budget_cell(row: &Row) -> String {
    match (row.budget, row.within_budget()) {
        (Some(budget), Some(ok)) => {
            format!(
                "{}{}",
                short_size_rounded(budget),
                if ok { "" } else { "!" }
            )
        }
        _ => "-".to_owned(),
    }
}

/// `812`, `16K`, `2.5M`, `1.25G`: a size in one word (no space), to a few
/// digits.
fn short_size_rounded(bytes: u64) -> String {
    for (unit, name) in [(GIB, "G"), (MIB, "M"), (KIB, "K")] {
        if bytes >= unit {
            let value = bytes as f64 / unit as f64;
            return format!("{}{name}", fmt_float((value * 100.0).round() / 100.0));
        }
    }
    bytes.to_string()
}

/// `25`, `0.5`: a float without needless decimals.
fn fmt_float(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn json_number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".to_owned(),
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_offsets_are_seeded_and_in_bounds() {
        let a = random_offsets(1000, 100, 50);
        assert_eq!(a, random_offsets(1000, 100, 50));
        assert!(a.iter().all(|&o| o + 100 <= 1000));
        assert_eq!(random_offsets(100, 100, 3), vec![0, 0, 0]);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(json_number(Some(f64::NAN)), "null");
        assert_eq!(json_number(None), "null");
        assert_eq!(json_number(Some(1.5)), "1.5");
    }

    /// A target over a local server with no simulated link, holding `data`
    /// as the generated object.
    fn local_target(data: Vec<u8>) -> (Target, TestServer) {
        let len = data.len() as u64;
        let server = start_server(data, None).expect("a local server");
        let target = Target {
            location: server.url(OBJECT_PATH),
            len,
            object_len: len,
            generated: true,
            nominal_limit: None,
        };
        (target, server)
    }

    /// The command line's defaults for reading.
    fn default_options() -> ReadOptions {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            read: ReadOptions,
        }
        <Cli as clap::Parser>::try_parse_from(["bench"])
            .expect("the defaults parse")
            .read
    }

    /// Each access pattern's row, in order.
    fn pattern_rows(target: &Target, options: &ReadOptions) -> Result<Vec<Row>> {
        Ok(vec![
            random_4k(target, 20, options)?,
            header_idle(target, options)?,
            members(target, options)?,
            members_hinted(target, options)?,
            first_mib_drop(target, options)?,
            eof_probe(target, options)?,
            footer(target, options, false)?,
            footer(target, options, true)?,
        ])
    }

    #[test]
    fn pattern_rows_count_the_bytes_they_need() {
        let len = 4 * MIB;

        let (target, _server) = local_target(generate(len, None).expect("memory"));
        let rows = pattern_rows(&target, &default_options()).expect("the patterns run");
        let needed: Vec<_> = rows
            .iter()
            .map(|r| (r.case, r.delivered, r.reads))
            .collect();
        assert_eq!(
            needed,
            [
                ("random-4k", 20 * 4 * KIB, 20),
                ("header-idle", 24, 3),
                ("members", 3 * MIB, 3 * 64),
                ("members-hinted", 3 * MIB, 3 * 64),
                ("first-mib-drop", MIB, 16),
                ("eof-probe", 0, 1),
                ("footer", 40 * KIB + 8, 2),
                ("footer-tail", 40 * KIB + 8, 2),
            ]
        );
        let budgets: Vec<_> = rows.iter().map(|r| r.budget).collect();
        assert_eq!(
            budgets,
            [
                Some(4 * 20 * 4 * KIB),
                Some(256 * KIB),
                Some(6 * MIB),
                Some(6 * MIB),
                Some(2 * MIB),
                Some(0),
                Some(2 * (40 * KIB + 8)),
                Some(2 * (40 * KIB + 8)),
            ]
        );
        assert!(rows.iter().all(|r| r.bytes == r.delivered));
        // The footer comes with a tail open's one request; otherwise the
        // open and each read ask on their own.
        let requests = |case| rows.iter().find(|r| r.case == case).map(|r| r.requests);
        assert_eq!(requests("footer-tail"), Some(1));
        assert_eq!(requests("footer"), Some(3));
        // Whatever the reader's policy, it fetched at least what was read,
        // each byte once (the members overlap, and a byte read twice is
        // fetched once).
        let mut members = random_offsets(len, MEMBER_SIZE, MEMBERS);
        members.sort_unstable();
        let mut distinct = 0;
        let mut covered = 0;
        for start in members {
            let end = start + MEMBER_SIZE;
            distinct += end - start.max(covered).min(end);
            covered = covered.max(end);
        }
        let once = |r: &Row| {
            if r.case.starts_with("members") {
                distinct
            } else {
                r.delivered
            }
        };
        assert!(rows.iter().all(|r| r.fetched >= once(r)), "{rows:?}");
    }

    #[test]
    fn pattern_rows_fit_an_object_smaller_than_their_reads() {
        let (target, _server) = local_target(generate(10, None).expect("memory"));
        let rows = pattern_rows(&target, &default_options()).expect("the patterns run");
        let needed: Vec<_> = rows.iter().map(|r| (r.case, r.delivered)).collect();
        assert_eq!(
            needed,
            [
                ("random-4k", 20 * 10),
                ("header-idle", 10),
                ("members", 3 * 10),
                ("members-hinted", 3 * 10),
                ("first-mib-drop", 10),
                ("eof-probe", 0),
                ("footer", 10),
                ("footer-tail", 10),
            ]
        );
    }

    #[test]
    fn pattern_rows_refuse_wrong_bytes() {
        let mut data = generate(4 * MIB, None).expect("memory");
        data.iter_mut().for_each(|b| *b = !*b);
        let (target, _server) = local_target(data);
        let options = default_options();
        assert!(random_4k(&target, 5, &options).is_err());
        assert!(header_idle(&target, &options).is_err());
        assert!(members(&target, &options).is_err());
        assert!(members_hinted(&target, &options).is_err());
        assert!(first_mib_drop(&target, &options).is_err());
        assert!(footer(&target, &options, false).is_err());
        assert!(footer(&target, &options, true).is_err());
    }

    #[test]
    fn budgets_judge_bytes_fetched_even_when_none_are_needed() {
        let probe = |fetched| Row {
            fetched,
            budget: Some(0),
            ..Row::default()
        };
        assert_eq!(probe(0).fetched_per_delivered(), None);
        assert_eq!(probe(0).within_budget(), Some(true));
        assert_eq!(budget_cell(&probe(0)), "0");
        assert_eq!(probe(1).within_budget(), Some(false));
        assert_eq!(budget_cell(&probe(1)), "0!");
        let members = Row {
            fetched: 6 * MIB + 1,
            delivered: 3 * MIB,
            budget: Some(6 * MIB),
            ..Row::default()
        };
        assert_eq!(budget_cell(&members), "6M!");
        assert_eq!(budget_cell(&Row::default()), "-");
    }

    #[test]
    fn floats_lose_needless_decimals() {
        assert_eq!(fmt_float(25.0), "25");
        assert_eq!(fmt_float(0.5), "0.5");
    }
}
