//! `prefetch`: read remote objects at the speed of the network, and show
//! with figures what prefetching does.
//!
//! Each subcommand lives in a file of its own; this one parses the command
//! line, sets up logging and turns an error into one line and exit code 1
//! (clap exits 2 on bad flags by itself).

mod bench;
mod cat;
mod copy;
mod error;
mod get;
mod interrupt;
mod options;
mod output;
mod range;
mod resume;
mod serve;
mod slice;
mod units;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};

const EXAMPLES: &str = "\
Examples:
  prefetch bench                                  plain range reads vs prefetching over a simulated 20 ms link
  prefetch bench --latency-ms 50 --bandwidth 10   the same over a slower link
  prefetch bench https://example.com/big.bin      measure a real object
  prefetch cat https://example.com/data.csv | head
  prefetch cat --range -1000 https://example.com/a.zip > tail.bin
  prefetch get https://example.com/big.bin -o big.bin
  prefetch serve ./data --latency-ms 20 --bandwidth 25

Locations are http:// and https:// URLs, gs://bucket/object and s3://bucket/key
objects, file:// URLs and local paths.";

/// Read remote objects at the speed of the network: range requests fetched
/// ahead of the reader, in parallel, in the background.
#[derive(Debug, Parser)]
#[command(name = "prefetch", version, after_help = EXAMPLES)]
struct Cli {
    /// Log more to stderr (-v: what is done, -vv: each request, -vvv:
    /// everything of this program's). Locations are always shown with
    /// secrets redacted; the HTTP and TLS libraries log warnings only, even
    /// with RUST_LOG, as their traces carry credentials.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure plain range reads against prefetching (by default over a
    /// local server with a simulated slow link).
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::Args),
    /// Write objects to stdout.
    #[command(after_help = cat::EXAMPLES)]
    Cat(cat::Args),
    /// Download an object to a file, with a progress bar on a terminal.
    #[command(after_help = get::EXAMPLES)]
    Get(get::Args),
    /// Serve a file or a folder over HTTP with range support, optionally
    /// over a simulated slow link.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::Args),
}

fn main() {
    if let Err(err) = run() {
        eprintln!("prefetch: {err}");
        std::process::exit(1)
    }
}

fn run() -> Result<()> {
    let cli = parse_args();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Cat(args) => cat::run(&args),
        Command::Get(args) => get::run(&args),
        Command::Serve(args) => serve::run(&args),
    };
    match result {
        // `prefetch cat … | head`: the reader has what it wanted.
        Err(Error::StdoutClosed) => Ok(()),
        other => other,
    }
}

/// The command line, or exit: 0 after `--help` or `--version`, 2 with the
/// error and the usage of the command at fault for bad flags (clap shows
/// the usage for some errors only).
fn parse_args() -> Cli {
    let err = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(err) => err,
    };
    if !err.use_stderr() {
        err.exit()
    }
    let mut message = err.render().to_string();
    if !message.contains("Usage:") {
        let mut command = Cli::command();
        command.build();
        let subcommand = std::env::args().skip(1).find_map(|arg| {
            command
                .find_subcommand(&arg)
                .map(|sub| sub.get_name().to_owned())
        });
        let usage = match subcommand.and_then(|name| command.find_subcommand_mut(name)) {
            Some(sub) => sub.render_usage(),
            None => command.render_usage(),
        };
        let at = message
            .find("For more information")
            .unwrap_or(message.len());
        message.insert_str(at, &format!("{usage}\n\n"));
    }
    eprint!("{message}");
    std::process::exit(2)
}

/// Libraries whose logs carry what must never be shown (ureq's and
/// rustls's traces dump request lines with presigned URLs and
/// `Authorization` headers): held at `warn` whatever `-v` or `RUST_LOG`
/// say. A name matches every module it prefixes (`ureq` covers
/// `ureq_proto`).
const QUIET_LIBRARIES: &[&str] = &["ureq", "rustls", "webpki", "http", "h2", "hyper"];

/// Warnings always (an unpinned object, say); more of this crate's with
/// each `-v`. `RUST_LOG` adds to it, except for [`QUIET_LIBRARIES`].
fn init_logging(verbose: u8) {
    use log::LevelFilter;
    use std::io::Write as _;

    let (ours, others) = match verbose {
        0 => (LevelFilter::Warn, LevelFilter::Warn),
        1 => (LevelFilter::Info, LevelFilter::Warn),
        2 => (LevelFilter::Debug, LevelFilter::Warn),
        _ => (LevelFilter::Trace, LevelFilter::Warn),
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(others)
        // Matches this program's modules and the library's (`prefetch_reader`).
        .filter_module("prefetch", ours)
        .parse_default_env();
    // After RUST_LOG, so it cannot lift them: a later directive for the
    // same module replaces the earlier one.
    for library in QUIET_LIBRARIES {
        builder.filter_module(library, LevelFilter::Warn);
    }
    builder
        .format(|buf, record| {
            writeln!(
                buf,
                "prefetch: {}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            )
        })
        .init();
}
