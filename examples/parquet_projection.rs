//! Reads two columns of a parquet file behind an HTTP(S) URL (or `gs://`,
//! `s3://`, a path) with `RemoteFile`, and says what it cost: one request
//! per column chunk read, the chunks of the next row group fetched ahead.
//!
//! ```text
//! cargo run --release --features parquet --example parquet_projection -- URL [COLUMN...]
//! ```
//!
//! The columns are given by index (default: 0 and 1).

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::Length;
use prefetch_reader::parquet::RemoteFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(location) = args.next() else {
        eprintln!("usage: parquet_projection URL [COLUMN...]");
        std::process::exit(2);
    };
    let mut columns: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if columns.is_empty() {
        columns = vec![0, 1];
    }
    let started = std::time::Instant::now();
    let file = RemoteFile::open(&location)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.clone())?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let mut rows = 0;
    for batch in builder.with_projection(mask).build()? {
        rows += batch?.num_rows();
    }
    let stats = file.stats();
    println!(
        "{rows} rows of columns {columns:?} in {:.2} s: {} requests, {} bytes fetched of {}",
        started.elapsed().as_secs_f64(),
        stats.requests,
        stats.bytes_fetched,
        Length::len(&file),
    );
    Ok(())
}
