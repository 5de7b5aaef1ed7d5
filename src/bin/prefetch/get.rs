//! `prefetch get`: an object to a file, whole or not at all.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use prefetch_reader::StatsHandle;

use crate::copy::{copy_range, CopyError};
use crate::error::{read_error, Error, Result};
use crate::interrupt;
use crate::options::ReadOptions;
use crate::output::Output;
use crate::range::ByteRange;
use crate::units::{human_size, mib_per_sec};

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch get https://example.com/big.bin -o big.bin
  prefetch get https://example.com/big.bin -o big.bin --concurrency 32 --max-prefetch 1G
  prefetch get --range 0-1048575 https://example.com/big.bin -o first-mib.bin

The object is written to a temporary file next to FILE, renamed to FILE
only once complete: a failed or interrupted download (SIGINT exits 130,
SIGTERM 143) never leaves a partial FILE, nor the temporary file. A FILE
that exists keeps its permissions (and owner, where allowed); a symlink is
written through to its target. A FIFO or a device (/dev/null) is written
in place, never replaced; a directory or socket is refused. `-o -` writes
to standard output.";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The object to download: a URL or a path.
    #[arg(value_name = "LOCATION")]
    location: String,

    /// Where to write it: a file (replaced whole once complete, keeping its
    /// mode), a FIFO or device (written in place), or - for stdout.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Only these bytes: A-B (inclusive), A- (from A to the end) or -N (the
    /// last N bytes).
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    range: Option<ByteRange>,

    #[command(flatten)]
    read: ReadOptions,
}

/// How often the progress bar redraws itself when bytes stop coming.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

pub(crate) fn run(args: &Args) -> Result<()> {
    let location = args.location.as_str();
    let started = Instant::now();
    let mut reader = args.read.open(location)?;
    reader.advise(prefetch_reader::Advice::Sequential);
    let range = match args.range {
        Some(range) => range.resolve(reader.len()).map_err(|why| {
            Error::msg(format_args!("{}: {why}", prefetch_reader::redact(location)))
        })?,
        None => 0..reader.len(),
    };
    let total = range.end - range.start;

    let mut output = Output::open(&args.output)?;
    if let Output::Replace(partial) = &output {
        interrupt::remove_on_interrupt(partial.temp_path());
    }
    let progress = progress_bar(total, reader.stats_handle());
    // The position is bytes written in order; the bar's `received` figure
    // reads the reader's counters at every redraw, so it moves while parts
    // arrive out of order and nothing can be written yet.
    let copied = copy_range(&mut reader, range, output.writer(), |written| {
        progress.set_position(written)
    });
    progress.finish_and_clear();
    let copied = match copied {
        Ok(n) => n,
        Err(CopyError::Read(err)) => return Err(read_error(location, err)),
        Err(CopyError::Write(err)) => return Err(output.write_error(err)),
    };
    output.finish()?;
    interrupt::keep_on_interrupt();

    let elapsed = started.elapsed().as_secs_f64();
    let stats = reader.stats();
    // The file is in place: a closed stderr is no reason to fail now.
    let _ = writeln!(
        io::stderr(),
        "{}: {copied} bytes written ({}) in {elapsed:.2} s, {:.1} MiB/s, {} bytes received, \
         {} requests, {} retries",
        output.name(),
        human_size(copied),
        mib_per_sec(copied, elapsed),
        stats.bytes_fetched,
        stats.requests,
        stats.retries
    );
    log::info!("{}: {stats:?}", prefetch_reader::redact(location));
    Ok(())
}

/// A bar on stderr when it is a terminal (nothing otherwise: a log or a
/// pipe has no use for redraws): bytes written in order of `total`, rate
/// and ETA, and the bytes received from the source so far (read from
/// `stats` at every redraw, so the figure moves even while the next byte
/// to write has not arrived).
fn progress_bar(total: u64, stats: StatsHandle) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{wide_bar} {bytes}/{total_bytes} written, {received} {binary_bytes_per_sec} ETA {eta}",
    ) {
        let received = move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "received {}", human_size(stats.get().bytes_fetched));
        };
        bar.set_style(style.with_key("received", received));
    }
    bar.enable_steady_tick(PROGRESS_TICK);
    bar
}
