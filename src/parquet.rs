//! [`RemoteFile`]: a parquet [`ChunkReader`] over any source (feature
//! `parquet`), so parquet's readers read a remote file with one request per
//! column chunk they touch rather than one or two per page.
//!
//! It is a [`SharedObject`] underneath. Opening reads the file's tail (with
//! the open's own request where the source can) and parses the footer; the
//! column chunks' byte ranges come from it. The first read inside a column
//! chunk hints the whole chunk, and the same columns' chunks in the next
//! row group while they fit in half of `max_prefetch`
//! ([`DEFAULT_MAX_PREFETCH`](crate::DEFAULT_MAX_PREFETCH) by default), so
//! pages are served from the object's cache without a request or a copy.
//! Columns read one after another in a row group (a full scan, or a
//! projection of neighbours) hint the columns after them in it too, one
//! fewer than that run's length, before parquet asks for them: parquet
//! reveals its projection one column at a time, and each would otherwise
//! wait a round trip. Reads outside every chunk (page indexes) fetch what
//! they ask for.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use crate::config::ReaderBuilder;
use crate::error::{Error, Result};
use crate::shared::{ObjectCursor, SharedObject};
use crate::source::RangeSource;
use crate::stats::Stats;

/// Bytes of the file's end read at open: the footer and, for most files,
/// all of the metadata before it (parquet's own readers guess 64 KiB too).
const TAIL: u64 = crate::source::DEFAULT_TAIL;

/// A parquet file behind any [`RangeSource`], as parquet's
/// [`ChunkReader`]: give it to `SerializedFileReader::new` or
/// `ParquetRecordBatchReaderBuilder::try_new`. Cheap to clone; clones
/// share one cache and may be used from several threads.
///
/// ```no_run
/// use parquet::file::reader::{FileReader, SerializedFileReader};
/// use prefetch_reader::parquet::RemoteFile;
///
/// let file = RemoteFile::open("https://example.com/data.parquet")?;
/// let reader = SerializedFileReader::new(file)?;
/// println!("{} rows", reader.metadata().file_metadata().num_rows());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RemoteFile {
    file: FileChunks,
    metadata: Arc<ParquetMetaData>,
}

/// The file's bytes as parquet asks for them: what `RemoteFile` serves,
/// and what the footer is parsed from before the metadata exists.
#[derive(Clone)]
struct FileChunks(Arc<Inner>);

struct Inner {
    object: SharedObject,
    /// Column chunks, sorted by start, once the footer is parsed.
    chunks: OnceLock<Vec<Chunk>>,
    /// The chunks read so far, as (row group, column): the projection, as
    /// parquet reveals it.
    chunks_read: Mutex<BTreeSet<(usize, usize)>>,
    /// Half of `max_prefetch`: the most one read hints ahead of itself;
    /// the other half holds the chunks being read.
    ahead_room: u64,
    /// Chunks kept hinted ahead of the one read: twice `concurrency`, so
    /// every connection has one in flight and one queued.
    ahead_chunks: usize,
}

/// One column chunk: where it is, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    range: Range<u64>,
    row_group: usize,
    column: usize,
}

impl RemoteFile {
    /// Opens the parquet file at `location` (a URL, `gs://`, `s3://` or a
    /// path, as [`open_source`](crate::open_source) takes). Over HTTP(S),
    /// `gs://` and `s3://` the open's one request brings the file's last 64 KiB
    /// ([`OpenOptions::tail`](crate::OpenOptions::tail)), so a footer that
    /// fits costs no other request.
    ///
    /// # Errors
    ///
    /// Those of [`open_source`](crate::open_source), and
    /// [`Error::InvalidResponse`] when the file's footer is not parquet's.
    pub fn open(location: &str) -> Result<RemoteFile> {
        RemoteFile::new(crate::OpenOptions::new().tail(TAIL).open_source(location)?)
    }

    /// A parquet file over `source`: reads its tail and parses the footer.
    ///
    /// # Errors
    ///
    /// The source's errors reading the tail, and
    /// [`Error::InvalidResponse`] when the footer is not parquet's.
    pub fn new<S: RangeSource>(source: S) -> Result<RemoteFile> {
        RemoteFile::with_settings(source, &ReaderBuilder::new())
    }

    /// [`new`](Self::new) with `settings`' `concurrency` (the most parts
    /// one fetch is split into) and `max_prefetch` (the cache's size); the
    /// other settings do not apply.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for invalid settings, and those of
    /// [`new`](Self::new).
    pub fn with_settings<S: RangeSource>(
        source: S,
        settings: &ReaderBuilder,
    ) -> Result<RemoteFile> {
        // The object validates the settings and asks the source at open.
        let object = SharedObject::with_settings(source, settings)?;
        let ahead_room = object.max_prefetch() / 2;
        let ahead_chunks = object.concurrency().saturating_mul(2);
        let len = object.len();
        // The tail, then the footer parsed from the cache.
        object.bytes(len.saturating_sub(TAIL)..len)?;
        let inner = Arc::new(Inner {
            object,
            chunks: OnceLock::new(),
            chunks_read: Mutex::new(BTreeSet::new()),
            ahead_room,
            ahead_chunks,
        });
        let file = FileChunks(inner.clone());
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .map_err(|err| Error::InvalidResponse {
                object: inner.object.location(),
                detail: format!("not a parquet file: {err}"),
            })?;
        let _ = inner.chunks.set(column_chunks(&metadata, len));
        Ok(RemoteFile {
            file,
            metadata: Arc::new(metadata),
        })
    }

    /// The file's metadata, parsed at open.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        &self.metadata
    }

    /// What reading the file has cost so far: its [`SharedObject`]'s
    /// [`stats`](SharedObject::stats).
    pub fn stats(&self) -> Stats {
        self.file.0.object.stats()
    }
}

impl Inner {
    /// Notes a read at `offset`: the first inside a column chunk hints the
    /// whole chunk, and the chunks of the columns read so far in the row
    /// groups after it, up to `ahead_chunks` of them within `ahead_room`,
    /// so pages come from the cache and the connections stay busy.
    fn note_read(&self, offset: u64) {
        let (Some(chunks), Some(chunk)) = (self.chunks.get(), self.chunk_holding(offset)) else {
            return;
        };
        let (columns, run) = {
            let mut read = self.chunks_read.lock();
            if !read.insert((chunk.row_group, chunk.column)) {
                return;
            }
            let columns = read.iter().map(|&(_, c)| c).collect::<BTreeSet<usize>>();
            (columns, run_before(&read, chunk.row_group, chunk.column))
        };
        let mut ranges = vec![chunk.range.clone()];
        // Older cached bytes (chunks read) make way as these arrive.
        let mut room = self.ahead_room;
        // The columns after a run in this row group, then the columns read
        // so far in the row groups after it.
        let beside = chunks.iter().filter(|c| {
            c.row_group == chunk.row_group
                && c.column > chunk.column
                && c.column - chunk.column < run
        });
        let next = chunks
            .iter()
            .filter(|c| c.row_group > chunk.row_group && columns.contains(&c.column));
        for ahead in beside.chain(next).take(self.ahead_chunks) {
            let size = ahead.range.end - ahead.range.start;
            if size > room {
                break;
            }
            room -= size;
            ranges.push(ahead.range.clone());
        }
        // One hint each, so chunks are never merged with the columns
        // between them. Never fails: a failed fetch is met by the read
        // that needs it.
        for range in ranges {
            let _ = self.object.will_need(&[range]);
        }
    }

    fn chunk_holding(&self, offset: u64) -> Option<&Chunk> {
        let chunks = self.chunks.get()?;
        let after = chunks.partition_point(|chunk| chunk.range.start <= offset);
        chunks[..after]
            .iter()
            .rev()
            .find(|chunk| chunk.range.contains(&offset))
    }
}

/// How many columns of `row_group` were read one after another, ending
/// with `column` (which was just read): 1 when the one before it was not.
fn run_before(read: &BTreeSet<(usize, usize)>, row_group: usize, column: usize) -> usize {
    (0..=column)
        .rev()
        .take_while(|&c| read.contains(&(row_group, c)))
        .count()
}

/// Every column chunk, sorted by start; chunks the footer places outside
/// the file (a hostile or broken one) are left out.
fn column_chunks(metadata: &ParquetMetaData, len: u64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = metadata
        .row_groups()
        .iter()
        .enumerate()
        .flat_map(|(row_group, group)| {
            group
                .columns()
                .iter()
                .enumerate()
                .map(move |(column, meta)| (row_group, column, meta))
        })
        .filter_map(|(row_group, column, meta)| {
            let start = meta
                .dictionary_page_offset()
                .unwrap_or_else(|| meta.data_page_offset());
            let start = u64::try_from(start).ok()?;
            let size = u64::try_from(meta.compressed_size()).ok()?;
            let end = start.checked_add(size)?;
            (end <= len && start < end).then_some(Chunk {
                range: start..end,
                row_group,
                column,
            })
        })
        .collect();
    chunks.sort_unstable_by_key(|chunk| chunk.range.start);
    chunks
}

fn parquet_error(err: Error) -> ParquetError {
    ParquetError::External(Box::new(err))
}

impl Length for RemoteFile {
    fn len(&self) -> u64 {
        self.file.len()
    }
}

impl ChunkReader for RemoteFile {
    type T = ObjectCursor;

    fn get_read(&self, start: u64) -> ParquetResult<ObjectCursor> {
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        self.file.get_bytes(start, length)
    }
}

impl Length for FileChunks {
    fn len(&self) -> u64 {
        self.0.object.len()
    }
}

impl ChunkReader for FileChunks {
    type T = ObjectCursor;

    fn get_read(&self, start: u64) -> ParquetResult<ObjectCursor> {
        let len = self.0.object.len();
        if start > len {
            return Err(ParquetError::EOF(format!(
                "a read at {start} of a {len}-byte file"
            )));
        }
        self.0.note_read(start);
        Ok(self.0.object.cursor(start))
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let len = self.0.object.len();
        let end = start
            .checked_add(length as u64)
            .filter(|&end| end <= len)
            .ok_or_else(|| {
                ParquetError::EOF(format!("{length} bytes at {start} of a {len}-byte file"))
            })?;
        if start == end {
            return Ok(Bytes::new());
        }
        self.0.note_read(start);
        self.0.object.bytes(start..end).map_err(parquet_error)
    }
}
