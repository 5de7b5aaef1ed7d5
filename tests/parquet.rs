//! `parquet::RemoteFile` under parquet's own reader, over the test server:
//! the values of the columns read, and one request per column chunk read.

#![cfg(all(feature = "parquet", feature = "testing"))]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::watchdog;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;
use parquet::data_type::Int64Type;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::RowAccessor;
use parquet::schema::parser::parse_message_type;
use prefetch_reader::parquet::RemoteFile;
use prefetch_reader::testing::TestServer;
use prefetch_reader::{Error, HttpSource, MemorySource};

const WATCHDOG_SECS: u64 = 120;
const COLUMNS: usize = 6;
const ROW_GROUPS: usize = 4;
const ROWS_PER_GROUP: usize = 20_000;

/// Column `c` of row `r`.
fn value(c: usize, r: usize) -> i64 {
    (r as i64).wrapping_mul(2_654_435_761) ^ (c as i64) << 40
}

/// A file of `COLUMNS` INT64 columns in `ROW_GROUPS` row groups,
/// uncompressed.
fn parquet_file() -> Vec<u8> {
    parquet_file_with(Compression::UNCOMPRESSED, false)
}

fn parquet_file_with(compression: Compression, dictionary: bool) -> Vec<u8> {
    let fields: String = (0..COLUMNS)
        .map(|c| format!("REQUIRED INT64 c{c}; "))
        .collect();
    let schema = Arc::new(parse_message_type(&format!("message m {{ {fields}}}")).expect("schema"));
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(dictionary)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).expect("writer");
    for group in 0..ROW_GROUPS {
        let mut row_group = writer.next_row_group().expect("row group");
        let mut c = 0;
        while let Some(mut column) = row_group.next_column().expect("column") {
            let rows = group * ROWS_PER_GROUP..(group + 1) * ROWS_PER_GROUP;
            let values: Vec<i64> = rows.map(|r| value(c, r)).collect();
            column
                .typed::<Int64Type>()
                .write_batch(&values, None, None)
                .expect("write");
            column.close().expect("close column");
            c += 1;
        }
        row_group.close().expect("close row group");
    }
    writer.close().expect("close");
    out
}

/// The `GET`s the server answered.
fn gets(server: &TestServer) -> u64 {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count() as u64
}

#[test]
fn two_of_six_columns_read_over_http_cost_one_request_per_column_chunk() {
    watchdog(WATCHDOG_SECS, || {
        let data = parquet_file();
        let server = TestServer::builder()
            .object("/t.parquet", data.clone())
            .build()
            .expect("server");
        let file = RemoteFile::new(HttpSource::open(&server.url("/t.parquet")).expect("open"))
            .expect("remote file");
        assert_eq!(file.metadata().num_row_groups(), ROW_GROUPS);
        let reader = SerializedFileReader::new(file.clone()).expect("reader");
        let projection = parse_message_type("message m { REQUIRED INT64 c1; REQUIRED INT64 c4; }")
            .expect("projection");
        let mut rows = 0;
        for (r, row) in reader
            .get_row_iter(Some(projection))
            .expect("rows")
            .enumerate()
        {
            let row = row.expect("row");
            assert_eq!(row.get_long(0).expect("c1"), value(1, r));
            assert_eq!(row.get_long(1).expect("c4"), value(4, r));
            rows += 1;
        }
        assert_eq!(rows, ROW_GROUPS * ROWS_PER_GROUP);
        // The HEAD, the tail, and one request per column chunk read.
        let stats = file.stats();
        assert_eq!(gets(&server), 1 + 2 * ROW_GROUPS as u64);
        assert_eq!(stats.requests, 1 + gets(&server));
        // The two columns' chunks and the tail, little more.
        let needed: u64 = reader
            .metadata()
            .row_groups()
            .iter()
            .flat_map(|g| [g.column(1), g.column(4)])
            .map(|c| c.compressed_size() as u64)
            .sum();
        assert!(
            stats.bytes_fetched <= needed + 64 * 1024,
            "{} fetched for {needed} needed",
            stats.bytes_fetched
        );
        assert_eq!(stats.bytes_fetched, server.bytes_sent());
    });
}

#[test]
fn every_column_reads_the_same_values_as_from_memory() {
    watchdog(WATCHDOG_SECS, || {
        for data in [parquet_file(), parquet_file_with(Compression::SNAPPY, true)] {
            let remote = RemoteFile::new(MemorySource::new(data.clone())).expect("remote file");
            let remote = SerializedFileReader::new(remote).expect("reader");
            let local = SerializedFileReader::new(Bytes::from(data)).expect("local");
            let remote_rows = remote.get_row_iter(None).expect("rows");
            let local_rows = local.get_row_iter(None).expect("rows");
            let mut n = 0;
            for (a, b) in remote_rows.zip(local_rows) {
                assert_eq!(a.expect("remote row"), b.expect("local row"));
                n += 1;
            }
            assert_eq!(n, ROW_GROUPS * ROWS_PER_GROUP);
        }
    });
}

#[test]
fn a_file_that_is_not_parquet_is_invalid_response() {
    watchdog(WATCHDOG_SECS, || {
        for data in [vec![], vec![7; 10], vec![7; 100_000]] {
            let err = RemoteFile::new(MemorySource::new(data))
                .err()
                .expect("not parquet");
            assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
        }
    });
}

/// Asserts that arrow reads columns 0 and 5 of both files as the same
/// batches, every value compared, and all the rows.
fn assert_same_projection<A: ChunkReader + 'static, B: ChunkReader + 'static>(a: A, b: B) {
    fn batches<T: ChunkReader + 'static>(file: T) -> ParquetRecordBatchReader {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("builder");
        let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 5]);
        builder.with_projection(mask).build().expect("reader")
    }
    let (a, b) = (batches(a), batches(b));
    let mut rows = 0;
    for (i, (a, b)) in a.zip(b).enumerate() {
        let (a, b) = (a.expect("batch"), b.expect("batch"));
        assert_eq!(a.num_columns(), 2);
        assert!(a == b, "batch {i} differs");
        rows += a.num_rows();
    }
    assert_eq!(rows, ROW_GROUPS * ROWS_PER_GROUP);
}

#[test]
fn arrow_reads_a_projection_of_a_snappy_file_as_from_memory_one_request_per_chunk() {
    watchdog(WATCHDOG_SECS, || {
        let data = parquet_file_with(Compression::SNAPPY, true);
        let server = TestServer::builder()
            .object("/s.parquet", data.clone())
            .build()
            .expect("server");
        let file = RemoteFile::open(&server.url("/s.parquet")).expect("remote file");
        // The open's one request brought the footer.
        assert_eq!(server.request_count(), 1);
        assert_eq!(file.stats().requests, 1);
        assert_same_projection(file.clone(), Bytes::from(data));
        // Then each chunk of the two columns once: the next row group's
        // fetched ahead, never twice.
        assert_eq!(server.request_count() as u64, 1 + 2 * ROW_GROUPS as u64);
        assert_eq!(file.stats().requests, server.request_count() as u64);
        assert_eq!(file.stats().bytes_fetched, server.bytes_sent());
    });
}

#[test]
fn columns_read_one_after_another_hint_the_next_ones_in_their_row_group() {
    watchdog(WATCHDOG_SECS, || {
        let data = parquet_file();
        let source = Arc::new(prefetch_reader::testing::CountingSource::new(
            MemorySource::new(data),
        ));
        let file = RemoteFile::new(source.clone()).expect("remote file");
        let group = file.metadata().row_group(0);
        let start = |c: usize| group.column(c).byte_range().0;
        let fetched_at = |c: usize| source.calls().iter().any(|call| call.offset == start(c));
        // Column 0, then column 1: a run of two hints column 2, not 3.
        file.get_bytes(start(0), 100).expect("column 0");
        file.get_bytes(start(1), 100).expect("column 1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !fetched_at(2) {
            assert!(std::time::Instant::now() < deadline, "{:?}", source.calls());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!fetched_at(3), "{:?}", source.calls());
        // Column 2 read: a run of three hints columns 3 and 4.
        let calls = source.call_count();
        file.get_bytes(start(2), 100).expect("column 2");
        while !(fetched_at(3) && fetched_at(4)) {
            assert!(std::time::Instant::now() < deadline, "{:?}", source.calls());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!fetched_at(5), "{:?}", source.calls());
        assert!(source.call_count() >= calls + 2);
    });
}

#[test]
fn a_gs_file_opens_and_parses_its_footer_in_one_request() {
    watchdog(WATCHDOG_SECS, || {
        let data = parquet_file();
        let server = TestServer::builder()
            .gcs_object("bkt", "t.parquet", data)
            .build()
            .expect("server");
        let _lock = common::env::env_lock();
        let endpoint = server.gcs_endpoint();
        let _env = common::env::EnvVars::set(&[("STORAGE_EMULATOR_HOST", Some(&endpoint))]);
        let file = RemoteFile::open("gs://bkt/t.parquet").expect("remote file");
        assert_eq!(file.metadata().num_row_groups(), ROW_GROUPS);
        // The tail's media download brought the footer and the generation.
        assert_eq!(server.request_count(), 1);
        assert_eq!(file.stats().requests, 1);
    });
}
