//! `prefetch get`: an object to a file, whole or not at all.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use prefetch_reader::StatsHandle;

use crate::copy::{copy_range, CopyError};
use crate::error::{read_error, Result};
use crate::interrupt;
use crate::options::ReadOptions;
use crate::output::Output;
use crate::range::ByteRange;
use crate::resume::{ResumableFile, Resume, Version};
use crate::units::{human_size, mib_per_sec};

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch get https://example.com/big.bin -o big.bin
  prefetch get https://example.com/big.bin -o big.bin --concurrency 32 --max-prefetch 1G
  prefetch get --range 0-1048575 https://example.com/big.bin -o first-mib.bin
  prefetch get -c https://example.com/big.bin -o big.bin

The object is written to a temporary file next to FILE, renamed to FILE
only once complete: a failed or interrupted download (SIGINT exits 130,
SIGTERM 143) never leaves a partial FILE, nor the temporary file. A FILE
that exists keeps its permissions (and owner, where allowed); a symlink is
written through to its target. A FIFO or a device (/dev/null) is written
in place, never replaced; a directory or socket is refused. `-o -` writes
to standard output.

With --continue (-c), the bytes go to FILE.part, with FILE.part.json
recording the object's validator (ETag, generation, Last-Modified or
mtime), length and range; both are kept when the download fails or is
interrupted. The next `get -c` appends to FILE.part when the object is
still that version, and starts over (saying why) when it is not. A FILE
of the object's length with no FILE.part is left alone.";

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

    /// Resume a download cut short: write FILE.part (kept on failure or
    /// interrupt) and go on from its end while the object is unchanged.
    #[arg(short = 'c', long = "continue")]
    resume: bool,

    #[command(flatten)]
    read: ReadOptions,
}

/// How often the progress bar redraws itself when bytes stop coming.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

pub(crate) fn run(args: &Args) -> Result<()> {
    let location = args.location.as_str();
    let started = Instant::now();
    let opened = args.read.open_range(location, args.range)?;
    let (mut reader, range) = (opened.reader, opened.range);
    reader.advise(prefetch_reader::Advice::Sequential);
    let total = reader.len();

    let mut output = if args.resume {
        let version = Version {
            validator: reader.get_ref().validator(),
            length: opened.object_len,
            start: range.start,
            end: range.end,
        };
        match ResumableFile::open(&args.output, &version)? {
            Resume::Complete(file) => {
                let _ = writeln!(
                    io::stderr(),
                    "{}: already there, of the expected {total} bytes, with no .part: left \
                     alone (its bytes are not checked; remove it to download again)",
                    file.display()
                );
                return Ok(());
            }
            Resume::Download(resumable) => Output::Resume(resumable),
        }
    } else {
        Output::open(&args.output)?
    };
    let done = match &output {
        Output::Replace(partial) => {
            interrupt::remove_on_interrupt(partial.temp_path());
            0
        }
        Output::Resume(resumable) => {
            interrupt::exit_on_interrupt();
            resumable.done()
        }
        Output::Stdout(_) | Output::InPlace { .. } => 0,
    };
    let progress = progress_bar(total, reader.stats_handle());
    progress.set_position(done);
    // The position is bytes written in order; the bar's `received` figure
    // reads the reader's counters at every redraw, so it moves while parts
    // arrive out of order and nothing can be written yet.
    let rest = done..total;
    let copied = copy_range(&mut reader, rest, output.writer(), |written| {
        progress.set_position(done + written)
    });
    progress.finish_and_clear();
    let copied = match copied {
        Ok(n) => n,
        Err(err) => {
            if let Output::Resume(resumable) = &output {
                let next = if is_object_changed(&err) {
                    "the object changed, so `prefetch get -c` again starts over"
                } else {
                    "`prefetch get -c` again goes on from where it stopped"
                };
                let _ = writeln!(io::stderr(), "{}: kept; {next}", resumable.part().display());
            }
            return Err(match err {
                CopyError::Read(err) => read_error(location, err),
                CopyError::Write(err) => output.write_error(err),
            });
        }
    };
    output.finish()?;
    interrupt::keep_on_interrupt();

    let elapsed = started.elapsed().as_secs_f64();
    let stats = reader.stats();
    let resumed = if done > 0 {
        format!(" after the {done} already there")
    } else {
        String::new()
    };
    // The file is in place: a closed stderr is no reason to fail now.
    let _ = writeln!(
        io::stderr(),
        "{}: {copied} bytes written ({}){resumed} in {elapsed:.2} s, {:.1} MiB/s, \
         {} bytes received, {} requests, {} retries",
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

/// Whether a copy failed because the object changed under the reader (a
/// resumed download's bytes then no longer match).
fn is_object_changed(err: &CopyError) -> bool {
    let CopyError::Read(err) = err else {
        return false;
    };
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<prefetch_reader::Error>())
        .is_some_and(|err| matches!(err, prefetch_reader::Error::ObjectChanged { .. }))
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
