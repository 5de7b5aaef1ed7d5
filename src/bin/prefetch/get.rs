//! `prefetch get`: an object to a file, whole or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use prefetch_reader::StatsHandle;

use crate::copy::{copy_range, CopyError};
use crate::error::{read_error, Error, Result};
use crate::options::ReadOptions;
use crate::range::ByteRange;
use crate::units::{human_size, mib_per_sec};

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch get https://example.com/big.bin -o big.bin
  prefetch get https://example.com/big.bin -o big.bin --concurrency 32 --max-prefetch 1G
  prefetch get --range 0-1048575 https://example.com/big.bin -o first-mib.bin

The object is written to a temporary file next to FILE, renamed to FILE
only once complete: a failed or interrupted download never leaves a partial
FILE.";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The object to download: a URL or a path.
    #[arg(value_name = "LOCATION")]
    location: String,

    /// Where to write it (replaced if it exists).
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
    let range = match args.range {
        Some(range) => range
            .resolve(reader.len())
            .map_err(|why| Error::msg(format_args!("{location}: {why}")))?,
        None => 0..reader.len(),
    };
    let total = range.end - range.start;

    let mut partial = PartialFile::create(&args.output)?;
    let progress = progress_bar(total, reader.stats_handle());
    // The position is bytes written in order; the bar's `received` figure
    // reads the reader's counters at every redraw, so it moves while parts
    // arrive out of order and nothing can be written yet.
    let copied = copy_range(&mut reader, range, &mut partial.file, |written| {
        progress.set_position(written)
    });
    progress.finish_and_clear();
    let copied = match copied {
        Ok(n) => n,
        Err(CopyError::Read(err)) => return Err(read_error(location, err)),
        Err(CopyError::Write(err)) => return Err(partial.write_error(err)),
    };
    partial.persist()?;

    let elapsed = started.elapsed().as_secs_f64();
    let stats = reader.stats();
    // The file is in place: a closed stderr is no reason to fail now.
    let _ = writeln!(
        io::stderr(),
        "{}: {copied} bytes written ({}) in {elapsed:.2} s, {:.1} MiB/s, {} bytes received, \
         {} requests, {} retries",
        args.output.display(),
        human_size(copied),
        mib_per_sec(copied, elapsed),
        stats.bytes_fetched,
        stats.requests,
        stats.retries
    );
    log::info!("{location}: {stats:?}");
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

/// The file being written: a hidden temporary next to the destination, so
/// the rename is atomic (same file system), removed unless it is persisted.
struct PartialFile {
    file: File,
    path: PathBuf,
    destination: PathBuf,
    persisted: bool,
}

impl PartialFile {
    fn create(destination: &Path) -> Result<PartialFile> {
        let name = destination.file_name().ok_or_else(|| {
            Error::msg(format_args!(
                "{}: not a file name to write to",
                destination.display()
            ))
        })?;
        let folder = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if destination.is_dir() {
            return Err(Error::msg(format_args!(
                "{}: is a directory",
                destination.display()
            )));
        }
        let pid = std::process::id();
        let mut attempt = 0u32;
        loop {
            let mut temp = std::ffi::OsString::from(".");
            temp.push(name);
            temp.push(format!(".{pid}-{attempt}.part"));
            let path = folder.join(temp);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(PartialFile {
                        file,
                        path,
                        destination: destination.to_owned(),
                        persisted: false,
                    })
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(err) => {
                    return Err(Error::msg(format_args!(
                        "cannot create a file in {}: {err}",
                        folder.display()
                    )))
                }
            }
        }
    }

    fn write_error(&self, err: io::Error) -> Error {
        Error::msg(format_args!(
            "cannot write {}: {err}",
            self.destination.display()
        ))
    }

    /// Flushes the bytes to disk and renames the file into place.
    fn persist(&mut self) -> Result<()> {
        self.file
            .flush()
            .and_then(|()| self.file.sync_all())
            .map_err(|err| self.write_error(err))?;
        fs::rename(&self.path, &self.destination).map_err(|err| self.write_error(err))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.persisted {
            if let Err(err) = fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {err}", self.path.display());
            }
        }
    }
}
