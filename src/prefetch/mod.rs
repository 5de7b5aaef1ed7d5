//! The prefetch engine.
//!
//! Each [`PrefetchReader`](crate::PrefetchReader) owns one producer thread
//! ([`producer`]), the only place that decides what to fetch. The reader
//! tells it where it is and what it waits for through an unbounded channel of
//! events; fetch jobs report on the same channel when they end, and block
//! memory freed anywhere wakes it too, so the producer sleeps on one
//! `recv()` and never polls.
//!
//! For each request the [`policy`] allows, the producer charges the block's
//! bytes (memory is accounted when it is reserved, not when it arrives),
//! spawns a fetch job on the I/O pool, and sends the reader a [`block`]: the
//! receiving end of a one-shot channel the job fills. Blocks go through a
//! bounded channel in the order they were issued, so the reader gets bytes
//! in order whatever order the jobs complete in; a block is one range
//! request, and consecutive blocks are fetched in parallel and read in place
//! (never joined into a bigger buffer). Buffers of dropped blocks are kept,
//! still counted, for the next requests, so steady reading reuses memory
//! instead of allocating and faulting in fresh buffers.
//!
//! A hard seek, an error or close ends an *epoch*: the reader sets the
//! epoch's cancel flag (which fetch jobs check between body chunks), drops
//! the epoch's blocks unread, and the next read starts a new epoch. Nothing
//! waits for abandoned jobs; their memory stays charged until they end.
//!
//! The I/O pool is a rayon [`ThreadPool`] of [`IO_THREADS`] threads, created
//! on first use and shared by every reader that was not given its own
//! (`ReaderBuilder::io_pool`). Its threads spend their time blocked on the
//! network, so it is kept apart from rayon's global pool, which belongs to
//! CPU work. Each reader keeps at most its `concurrency` requests in flight;
//! when readers together want more than the pool has threads, their jobs
//! queue in the pool in the order they were issued. A request abandoned by
//! a hard seek or close still holds its pool thread (and counts against its
//! reader's `concurrency`) until it notices its cancel flag — at the next
//! body chunk, or at the source's read timeout when a server stalls.

pub(crate) mod block;
pub(crate) mod policy;
pub(crate) mod producer;

use std::sync::Arc;

use parking_lot::Mutex;
use rayon::ThreadPool;

use crate::error::{Error, Result};

/// Threads in the shared I/O pool: four readers at the default
/// concurrency of 16 run all their requests at once.
pub const IO_THREADS: usize = 64;

static SHARED_POOL: Mutex<Option<Arc<ThreadPool>>> = Mutex::new(None);

/// The shared I/O pool, made on first use.
pub(crate) fn shared_pool() -> Result<Arc<ThreadPool>> {
    let mut slot = SHARED_POOL.lock();
    if let Some(pool) = &*slot {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(IO_THREADS)
        .thread_name(|i| format!("prefetch-io-{i}"))
        .build()
        .map_err(|err| Error::Io {
            context: "cannot start the I/O thread pool".to_owned(),
            source: std::io::Error::other(err),
        })?;
    let pool = Arc::new(pool);
    *slot = Some(pool.clone());
    Ok(pool)
}
