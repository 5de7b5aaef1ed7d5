//! `prefetch serve`: the crate's test server, for users to try readers
//! against a slow link.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use prefetch_reader::testing::TestServer;

use crate::error::{Error, Result};
use crate::units::MIB;

pub(crate) const EXAMPLES: &str = "\
Examples:
  prefetch serve ./data                                   every file under ./data
  prefetch serve big.bin --latency-ms 20 --bandwidth 25   one file over a simulated 20 ms, 25 MiB/s link
  prefetch serve ./data --addr 0.0.0.0:8080               on every interface (no authentication!)

Prints the URL, then serves until interrupted (Ctrl-C). A single file is
read into memory at start; serve its folder to serve a large file from disk.
Answers GET and HEAD with single byte ranges, ETag and Last-Modified; an
unsatisfiable range gets 416, an invalid or multi-range one the whole body.
A request head must arrive within 10 s, an idle connection is closed after
60 s, and at most 256 connections are served at once (others get 503).";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A file, or a folder whose files are all served.
    #[arg(value_name = "PATH")]
    path: PathBuf,

    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// Delay before every response, like a link's round trip.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,

    /// Cap on each connection's body rate, in MiB/s (fractions allowed).
    #[arg(long, value_name = "MIB_PER_SEC", value_parser = parse_bandwidth)]
    bandwidth: Option<u64>,
}

/// MiB/s (fractions allowed) to bytes per second; must be positive.
pub(crate) fn parse_bandwidth(text: &str) -> std::result::Result<u64, String> {
    let mib: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of MiB/s"))?;
    let bytes = (mib * MIB as f64).round();
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!("`{text}`: must be more than zero MiB/s"));
    }
    Ok(bytes as u64)
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let path = &args.path;
    let meta = std::fs::metadata(path)
        .map_err(|err| Error::msg(format_args!("{}: {err}", path.display())))?;
    let mut builder = TestServer::builder();
    builder
        .addr(args.addr)
        .latency(Duration::from_millis(args.latency_ms));
    if let Some(bandwidth) = args.bandwidth {
        builder.bandwidth(bandwidth);
    }
    let served_path = if meta.is_dir() {
        builder.serve_dir(path);
        String::new()
    } else {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| Error::msg(format_args!("{}: not a UTF-8 file name", path.display())))?
            .to_owned();
        let data = std::fs::read(path)
            .map_err(|err| Error::msg(format_args!("cannot read {}: {err}", path.display())))?;
        builder.object(&name, data);
        percent_encode(&name)
    };
    let server = builder
        .build()
        .map_err(|err| Error::msg(format_args!("cannot serve on {}: {err}", args.addr)))?;
    let url = server.url(&served_path);
    let link = match (args.latency_ms, args.bandwidth) {
        (0, None) => String::new(),
        (latency, bandwidth) => format!(
            " (latency {latency} ms, {} per connection)",
            bandwidth.map_or("no bandwidth cap".to_owned(), |b| format!(
                "{:.1} MiB/s",
                b as f64 / MIB as f64
            ))
        ),
    };
    let mut stdout = std::io::stdout();
    // A closed stdout must not stop the server: the URL is also in the log.
    let _ = writeln!(stdout, "serving {} at {url}{link}", path.display());
    let _ = stdout.flush();
    log::info!("serving {} at {url}; Ctrl-C stops", path.display());
    loop {
        // The server runs on its own threads; this one only keeps it alive.
        std::thread::park();
    }
}

/// A file name as one URL path segment: everything but unreserved
/// characters percent-encoded.
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_encoded_as_one_segment() {
        assert_eq!(percent_encode("data.bin"), "data.bin");
        assert_eq!(percent_encode("a b/c?.bin"), "a%20b%2Fc%3F.bin");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn bandwidth_is_mib_per_second() {
        assert_eq!(parse_bandwidth("25"), Ok(25 * MIB));
        assert_eq!(parse_bandwidth("0.5"), Ok(MIB / 2));
        assert!(parse_bandwidth("0").is_err());
        assert!(parse_bandwidth("-3").is_err());
        assert!(parse_bandwidth("NaN").is_err());
        assert!(parse_bandwidth("fast").is_err());
    }
}
