//! [`RemoteFile`]: a parquet [`ChunkReader`] over any source (feature
//! `parquet`), so parquet's readers read a remote file with one request per
//! column chunk they touch rather than one or two per page.
//!
//! Opening reads the file's tail in one request and parses the footer; the
//! column chunks' byte ranges come from it. The first read inside a column
//! chunk fetches the whole chunk (large ones in parallel parts) into a
//! cache bounded by `max_prefetch`
//! ([`DEFAULT_MAX_PREFETCH`](crate::DEFAULT_MAX_PREFETCH) by default);
//! the chunk's pages are then served from memory without a copy. A chunk
//! larger than half the cache is fetched a window at a time. Reads outside
//! every chunk (the footer, page indexes) fetch what they ask for.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use crate::config::ReaderBuilder;
use crate::error::{Error, Result};
use crate::source::{FetchContext, RangeSource};
use crate::stats::{Counters, Stats};

/// Bytes of the file's end read at open: the footer and, for most files,
/// all of the metadata before it (parquet's own readers guess 64 KiB too).
const TAIL: u64 = crate::source::DEFAULT_TAIL;

/// Bytes a fetch outside every column chunk (or of a chunk too large for
/// the cache) gets at least, so that small reads there do not each cost a
/// round trip.
const MIN_FETCH: u64 = 64 * 1024;

/// The smallest part a large fetch is split into (into at most
/// `concurrency` parts).
const MIN_PART: u64 = 4 << 20;

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
    source: Box<dyn RangeSource>,
    len: u64,
    /// Column chunks, sorted by start, once the footer is parsed.
    chunks: OnceLock<Vec<Chunk>>,
    /// The chunks read so far, as (row group, column): the projection, as
    /// parquet reveals it.
    chunks_read: Mutex<BTreeSet<(usize, usize)>>,
    /// Chunks being fetched ahead, by start: a read of one waits for it.
    ahead: Mutex<HashMap<u64, Arc<Ahead>>>,
    cache: Mutex<Cache>,
    /// The most parts one fetch is split into.
    concurrency: u64,
    counters: Arc<Counters>,
}

/// One column chunk: where it is, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    range: Range<u64>,
    row_group: usize,
    column: usize,
}

/// A chunk fetch under way ahead of parquet; done once it ended, whether
/// it got its bytes (then in the cache) or not.
#[derive(Default)]
struct Ahead {
    done: Mutex<bool>,
    ended: Condvar,
}

impl Ahead {
    fn wait(&self) {
        let mut done = self.done.lock();
        while !*done {
            self.ended.wait(&mut done);
        }
    }

    fn finish(&self) {
        *self.done.lock() = true;
        self.ended.notify_all();
    }
}

/// Ends an [`Ahead`] when dropped, a panic included.
struct Finish(Arc<Ahead>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Fetched ranges, oldest first, within `limit` bytes.
struct Cache {
    entries: VecDeque<(u64, Bytes)>,
    bytes: u64,
    limit: u64,
}

impl Cache {
    /// The cached bytes from `start` on, as far as one entry goes.
    fn from(&self, start: u64) -> Option<Bytes> {
        self.entries.iter().find_map(|(offset, bytes)| {
            let end = offset + bytes.len() as u64;
            (start >= *offset && start < end).then(|| bytes.slice((start - offset) as usize..))
        })
    }

    fn insert(&mut self, offset: u64, bytes: Bytes) {
        self.bytes += bytes.len() as u64;
        self.entries.push_back((offset, bytes));
        while self.bytes > self.limit && self.entries.len() > 1 {
            if let Some((_, old)) = self.entries.pop_front() {
                self.bytes -= old.len() as u64;
            }
        }
    }
}

impl RemoteFile {
    /// Opens the parquet file at `location` (a URL, `gs://`, `s3://` or a
    /// path, as [`open_source`](crate::open_source) takes). Over HTTP(S)
    /// and `s3://` the open's one request brings the file's last 64 KiB
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
        let config = settings.validated()?;
        source.set_concurrency(config.concurrency);
        let len = source.len();
        let counters = Arc::new(Counters::default());
        Counters::add(&counters.requests, source.requests_at_open());
        Counters::add(&counters.bytes_fetched, source.bytes_at_open());
        let inner = Arc::new(Inner {
            source: Box::new(source),
            len,
            chunks: OnceLock::new(),
            chunks_read: Mutex::new(BTreeSet::new()),
            ahead: Mutex::new(HashMap::new()),
            cache: Mutex::new(Cache {
                entries: VecDeque::new(),
                bytes: 0,
                limit: config.max_prefetch,
            }),
            concurrency: config.concurrency as u64,
            counters,
        });
        let tail = len.saturating_sub(TAIL);
        let bytes = inner.fetch(tail..len)?;
        inner.cache.lock().insert(tail, bytes);
        let file = FileChunks(inner.clone());
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .map_err(|err| Error::InvalidResponse {
                object: inner.source.location(),
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

    /// What reading the file has cost so far: `requests` (the source's at
    /// open, the tail's, one per fetch part, and retries), `bytes_fetched`
    /// and `retries`; the other counters stay 0.
    pub fn stats(&self) -> Stats {
        self.file.0.counters.snapshot()
    }
}

impl Inner {
    /// The cached bytes from `start` on, if at least `want` of them (or
    /// all to the end of the file) are there.
    fn cached(&self, start: u64, want: u64) -> Option<Bytes> {
        let bytes = self.cache.lock().from(start)?;
        (bytes.len() as u64 >= want.min(self.len - start)).then_some(bytes)
    }

    /// The bytes from `start` on: from the cache, else fetched — the
    /// column chunk holding `start` from there to its end (a window of it
    /// when it is too large to cache), or at least `want` bytes elsewhere.
    /// A chunk read for the first time sets off the fetch of the chunks
    /// of the columns read so far in the next row group.
    fn bytes_from(self: &Arc<Self>, start: u64, want: u64) -> Result<Bytes> {
        let chunk = self.chunk_holding(start).cloned();
        if let Some(chunk) = &chunk {
            let first = (self.chunks_read.lock()).insert((chunk.row_group, chunk.column));
            if first {
                self.fetch_ahead(chunk.row_group + 1);
            }
        }
        if let Some(bytes) = self.cached(start, want) {
            return Ok(bytes);
        }
        if let Some(chunk) = &chunk {
            let ahead = self.ahead.lock().get(&chunk.range.start).cloned();
            if let Some(ahead) = ahead {
                ahead.wait();
                if let Some(bytes) = self.cached(start, want) {
                    return Ok(bytes);
                }
            }
        }
        let limit = self.cache.lock().limit;
        let floor = start.saturating_add(want.max(MIN_FETCH)).min(self.len);
        let end = match &chunk {
            Some(chunk) if chunk.range.end - chunk.range.start <= limit / 2 => {
                chunk.range.end.max(floor)
            }
            Some(chunk) => chunk
                .range
                .end
                .min(start.saturating_add(limit / 8))
                .max(floor),
            None => floor,
        };
        let bytes = self.fetch(start..end)?;
        self.cache.lock().insert(start, bytes.clone());
        Ok(bytes)
    }

    /// Starts fetching, on threads of their own, the chunks of the columns
    /// read so far in `row_group`, those not cached or under way, while
    /// they fit in half the cache beside what it holds.
    fn fetch_ahead(self: &Arc<Self>, row_group: usize) {
        let Some(chunks) = self.chunks.get() else {
            return;
        };
        let columns: BTreeSet<usize> = self.chunks_read.lock().iter().map(|&(_, c)| c).collect();
        let mut ahead = self.ahead.lock();
        let mut room = {
            let cache = self.cache.lock();
            (cache.limit / 2).saturating_sub(cache.bytes)
        };
        let wanted = chunks
            .iter()
            .filter(|c| c.row_group == row_group && columns.contains(&c.column));
        for chunk in wanted {
            let size = chunk.range.end - chunk.range.start;
            if ahead.contains_key(&chunk.range.start)
                || self.cached(chunk.range.start, size).is_some()
            {
                continue;
            }
            if size > room {
                break;
            }
            room -= size;
            let pending = Arc::new(Ahead::default());
            ahead.insert(chunk.range.start, pending.clone());
            let inner = self.clone();
            let range = chunk.range.clone();
            let spawned = std::thread::Builder::new()
                .name("parquet-ahead".to_owned())
                .spawn(move || {
                    // Whatever happens here, a read waiting for the chunk
                    // goes on; a failure is that read's to meet and report.
                    let _finish = Finish(pending);
                    if let Ok(bytes) = inner.fetch(range.clone()) {
                        inner.cache.lock().insert(range.start, bytes);
                    }
                    inner.ahead.lock().remove(&range.start);
                });
            if spawned.is_err() {
                // No thread: the chunk is fetched when read.
                if let Some(pending) = ahead.remove(&chunk.range.start) {
                    pending.finish();
                }
            }
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

    /// Reads `range` from the source, in parallel parts when it is large.
    fn fetch(&self, range: Range<u64>) -> Result<Bytes> {
        let len = usize::try_from(range.end - range.start).map_err(|_| Error::InvalidConfig {
            setting: "parquet read",
            reason: format!(
                "{} bytes do not fit in memory here",
                range.end - range.start
            ),
        })?;
        let mut buf = vec![0; len];
        let parts = (len as u64 / MIN_PART).clamp(1, self.concurrency);
        let part = len.div_ceil(parts as usize).max(1);
        let ctx = FetchContext::attached(Arc::new(AtomicBool::new(false)), self.counters.clone());
        std::thread::scope(|scope| {
            let jobs: Vec<_> = buf
                .chunks_mut(part)
                .enumerate()
                .map(|(i, chunk)| {
                    let offset = range.start + (i * part) as u64;
                    let ctx = &ctx;
                    Counters::add(&self.counters.requests, 1);
                    scope.spawn(move || self.source.read_at(offset, chunk, ctx))
                })
                .collect();
            jobs.into_iter()
                .map(|job| {
                    job.join().unwrap_or_else(|_| {
                        Err(Error::Terminated(format!(
                            "the source panicked reading {}",
                            self.source.location()
                        )))
                    })
                })
                .collect::<Result<Vec<()>>>()
        })?;
        // Bytes served from what the open received were counted at open; a
        // source that does not report its bytes received them all.
        let reported = ctx.bytes_received() + ctx.bytes_from_open();
        let unreported = (len as u64).saturating_sub(reported);
        Counters::add(&self.counters.bytes_fetched, unreported);
        Ok(Bytes::from(buf))
    }
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
    type T = RemoteRead;

    fn get_read(&self, start: u64) -> ParquetResult<RemoteRead> {
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        self.file.get_bytes(start, length)
    }
}

impl Length for FileChunks {
    fn len(&self) -> u64 {
        self.0.len
    }
}

impl ChunkReader for FileChunks {
    type T = RemoteRead;

    fn get_read(&self, start: u64) -> ParquetResult<RemoteRead> {
        if start > self.0.len {
            return Err(ParquetError::EOF(format!(
                "a read at {start} of a {}-byte file",
                self.0.len
            )));
        }
        Ok(RemoteRead {
            inner: self.0.clone(),
            pos: start,
            buf: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let len = self.0.len;
        let end = start
            .checked_add(length as u64)
            .filter(|&end| end <= len)
            .ok_or_else(|| {
                ParquetError::EOF(format!("{length} bytes at {start} of a {len}-byte file"))
            })?;
        if start == end {
            return Ok(Bytes::new());
        }
        let bytes = self
            .0
            .bytes_from(start, end - start)
            .map_err(parquet_error)?;
        Ok(bytes.slice(..length))
    }
}

/// A reader of a [`RemoteFile`] from an offset on, served from the file's
/// cache and fetching as [`ChunkReader::get_bytes`] does.
pub struct RemoteRead {
    inner: Arc<Inner>,
    pos: u64,
    buf: Bytes,
}

impl Read for RemoteRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.inner.len || out.is_empty() {
                return Ok(0);
            }
            self.buf = self
                .inner
                .bytes_from(self.pos, 1)
                .map_err(io::Error::from)?;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}
