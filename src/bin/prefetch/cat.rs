//! `prefetch cat`: objects to stdout.

use std::io::{self, Write};

use crate::copy::{copy_range, CopyError};
use crate::error::{read_error, stdout_error, Result};
use crate::options::ReadOptions;
use crate::range::ByteRange;

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch cat https://example.com/data.csv | head
  prefetch cat part1.bin part2.bin > whole.bin
  prefetch cat --range 0-1023 https://example.com/big.bin | xxd | head
  prefetch cat --range -22 https://example.com/archive.zip | xxd     (a zip's end record)

A closed stdout (`| head`) ends the command quietly with exit code 0.";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Objects to write, one after the other: URLs or paths.
    #[arg(value_name = "LOCATION", required = true)]
    locations: Vec<String>,

    /// Only these bytes of each object: A-B (inclusive), A- (from A to the
    /// end) or -N (the last N bytes).
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    range: Option<ByteRange>,

    #[command(flatten)]
    read: ReadOptions,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for location in &args.locations {
        let mut reader = args.read.open_range(location, args.range)?.reader;
        reader.advise(prefetch_reader::Advice::Sequential);
        let len = reader.len();
        match copy_range(&mut reader, 0..len, &mut out, |_| {}) {
            Ok(_) => {}
            Err(CopyError::Write(err)) => return Err(stdout_error(err)),
            Err(CopyError::Read(err)) => return Err(read_error(location, err)),
        }
        log::info!(
            "{}: {:?}",
            prefetch_reader::redact(location),
            reader.stats()
        );
    }
    out.flush().map_err(stdout_error)
}
