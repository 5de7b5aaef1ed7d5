//! A parquet file read over a simulated slow link: `RemoteFile` against
//! plain range reads, counting what each fetches.
//!
//! The file (10 INT64 columns of scrambled values, 8 row groups, snappy) is
//! served by the test server with a 20 ms delay before every response and
//! 25 MiB/s per connection. Cases, each from a fresh open:
//!
//! - **plain**: the obvious `ChunkReader` over an `HttpSource`: every
//!   `get_bytes` one range read, every `get_read` a `BufReader` of 64 KiB
//!   range reads; the projection (2 of 10 columns) only, the full scan
//!   being too slow to wait for.
//! - **remote**: `RemoteFile::open`, the projection and the full scan.
//!
//! Columns: seconds from open to the last row; `fetch/need`, bytes the
//! server sent ÷ bytes the read needs (the projected column chunks and
//! the footer, or the whole file); requests the server answered; the
//! speed-up over plain; MiB/s and the share of the link limit (16 × 25
//! MiB/s) for the full scan.
//!
//! ```text
//! cargo bench --features testing,parquet --bench parquet
//! ```

use std::error::Error;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;
use parquet::data_type::Int64Type;
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use prefetch_reader::parquet::RemoteFile;
use prefetch_reader::testing::TestServer;
use prefetch_reader::{FetchContext, HttpSource, RangeSource};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const COLUMNS: usize = 10;
const ROW_GROUPS: usize = 8;
const ROWS_PER_GROUP: usize = 160_000;
const PROJECTION: [usize; 2] = [3, 7];
const LATENCY: Duration = Duration::from_millis(20);
const BANDWIDTH: u64 = 25 << 20;
const LINK_LIMIT: f64 = 16.0 * 25.0;

/// The value of column `c` in row `r`: scrambled, so snappy keeps it all.
fn value(c: usize, r: usize) -> i64 {
    let x = (r as u64 ^ (c as u64) << 48).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ x >> 29) as i64
}

fn parquet_file() -> BenchResult<Vec<u8>> {
    let fields: String = (0..COLUMNS)
        .map(|c| format!("REQUIRED INT64 c{c}; "))
        .collect();
    let schema = Arc::new(parse_message_type(&format!("message m {{ {fields}}}"))?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props)?;
    for group in 0..ROW_GROUPS {
        let mut row_group = writer.next_row_group()?;
        let mut c = 0;
        while let Some(mut column) = row_group.next_column()? {
            let rows = group * ROWS_PER_GROUP..(group + 1) * ROWS_PER_GROUP;
            let values: Vec<i64> = rows.map(|r| value(c, r)).collect();
            column
                .typed::<Int64Type>()
                .write_batch(&values, None, None)?;
            column.close()?;
            c += 1;
        }
        row_group.close()?;
    }
    writer.close()?;
    Ok(out)
}

/// Plain range reads: what a `ChunkReader` written the obvious way does.
#[derive(Clone)]
struct Plain(Arc<HttpSource>);

/// A `get_read` of [`Plain`]: range reads from `pos` on.
struct PlainRead {
    source: Arc<HttpSource>,
    pos: u64,
}

impl Read for PlainRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.source.len() - self.pos).unwrap_or(usize::MAX));
        self.source
            .read_at(self.pos, &mut buf[..n], &FetchContext::new())?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Length for Plain {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl ChunkReader for Plain {
    type T = BufReader<PlainRead>;

    fn get_read(&self, start: u64) -> ParquetResult<Self::T> {
        let read = PlainRead {
            source: self.0.clone(),
            pos: start,
        };
        Ok(BufReader::with_capacity(64 << 10, read))
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let mut buf = vec![0; length];
        self.0
            .read_at(start, &mut buf, &FetchContext::new())
            .map_err(|err| ParquetError::External(Box::new(err)))?;
        Ok(Bytes::from(buf))
    }
}

/// Reads every row of `columns` (all when `None`); the rows read.
fn read_rows<R: ChunkReader + 'static>(file: R, columns: Option<&[usize]>) -> BenchResult<usize> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mask = match columns {
        Some(columns) => ProjectionMask::leaves(builder.parquet_schema(), columns.iter().copied()),
        None => ProjectionMask::all(),
    };
    let mut rows = 0;
    for batch in builder.with_projection(mask).build()? {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

struct Row {
    case: &'static str,
    secs: f64,
    needed: u64,
    sent: u64,
    requests: usize,
}

fn run(
    server: &TestServer,
    case: &'static str,
    needed: u64,
    read: impl FnOnce() -> BenchResult<usize>,
) -> BenchResult<Row> {
    server.reset_counters();
    let started = Instant::now();
    let rows = read()?;
    let secs = started.elapsed().as_secs_f64();
    if rows != ROW_GROUPS * ROWS_PER_GROUP {
        return Err(format!("{case}: {rows} rows read").into());
    }
    Ok(Row {
        case,
        secs,
        needed,
        sent: server.bytes_sent(),
        requests: server.request_count(),
    })
}

fn main() -> BenchResult<()> {
    let data = parquet_file()?;
    let len = data.len() as u64;
    let footer = u64::from(u32::from_le_bytes(
        data[data.len() - 8..data.len() - 4].try_into()?,
    )) + 8;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&Bytes::from(data.clone()))?;
    let projected: u64 = metadata
        .row_groups()
        .iter()
        .flat_map(|group| PROJECTION.map(|c| group.column(c).byte_range().1))
        .sum::<u64>()
        + footer;
    let server = TestServer::builder()
        .object("/t.parquet", data)
        .latency(LATENCY)
        .bandwidth(BANDWIDTH)
        .build()?;
    let url = server.url("/t.parquet");
    println!(
        "parquet file: {len} bytes, {COLUMNS} columns, {ROW_GROUPS} row groups; \
         {} ms latency, {} MiB/s per connection",
        LATENCY.as_millis(),
        BANDWIDTH >> 20
    );
    let rows = [
        run(&server, "plain 2/10", projected, || {
            read_rows(Plain(Arc::new(HttpSource::open(&url)?)), Some(&PROJECTION))
        })?,
        run(&server, "remote 2/10", projected, || {
            read_rows(RemoteFile::open(&url)?, Some(&PROJECTION))
        })?,
        run(&server, "remote all", len, || {
            read_rows(RemoteFile::open(&url)?, None)
        })?,
    ];
    println!(
        "\n{:<12} {:>7} {:>10} {:>9} {:>7} {:>8} {:>6}",
        "case", "secs", "fetch/need", "requests", "/plain", "MiB/s", "/link"
    );
    for row in &rows {
        let speedup = rows[0].secs / row.secs;
        let mib_s = row.needed as f64 / row.secs / f64::from(1 << 20);
        println!(
            "{:<12} {:>7.2} {:>10.3} {:>9} {:>6.1}x {:>8.1} {:>5.0}%",
            row.case,
            row.secs,
            row.sent as f64 / row.needed as f64,
            row.requests,
            speedup,
            mib_s,
            100.0 * mib_s / LINK_LIMIT
        );
    }
    Ok(())
}
