//! Where fetch jobs run: a pool the caller gave, or the shared I/O pools.
//!
//! The shared pools are rayon pools of [`IO_THREADS`] threads each, kept
//! apart from rayon's global pool (which belongs to CPU work), made on
//! first use and never dropped. A job goes to the first shared pool with
//! fewer jobs than threads, so it starts at once; when every pool is full —
//! readers together want more requests than there are threads, or
//! abandoned requests are stuck on a silent server until its read timeout
//! — another pool is made, up to [`MAX_SHARED_POOLS`]. So stuck work never
//! starves a live reader while the cap allows, and past it jobs queue on
//! the least loaded pool.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use rayon::ThreadPool;

use crate::error::{Error, Result};

/// Threads in each shared I/O pool: four readers at the default
/// concurrency of 16 run all their requests at once. When every thread of
/// the shared pools is busy (more readers, or abandoned requests stuck on
/// a silent server), another pool of this size starts, up to four; past
/// that, requests queue.
pub const IO_THREADS: usize = 64;

/// Most shared pools: 256 threads, each mostly blocked on the network
/// (and each with little more than its stack).
pub(crate) const MAX_SHARED_POOLS: usize = 4;

/// One shared pool, and the jobs spawned on it that have not ended.
struct Member {
    pool: ThreadPool,
    jobs: Arc<AtomicUsize>,
}

static SHARED: Mutex<Vec<Member>> = Mutex::new(Vec::new());

thread_local! {
    /// Set on the shared pools' threads as they start: asking needs no lock.
    static ON_SHARED_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The pool a reader's fetch jobs run on.
#[derive(Clone)]
pub(crate) enum IoPool {
    /// The caller's, as given to `ReaderBuilder::io_pool`.
    Own(Arc<ThreadPool>),
    /// The shared pools.
    Shared,
}

impl IoPool {
    /// The caller's pool, or the shared ones (the first made now).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the first shared pool cannot start.
    pub(crate) fn new(own: Option<Arc<ThreadPool>>) -> Result<IoPool> {
        if let Some(pool) = own {
            return Ok(IoPool::Own(pool));
        }
        let mut shared = SHARED.lock();
        if shared.is_empty() {
            shared.push(new_member(0)?);
        }
        Ok(IoPool::Shared)
    }

    /// Runs `job` on the pool.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        match self {
            IoPool::Own(pool) => pool.spawn(job),
            IoPool::Shared => spawn_shared(job),
        }
    }

    /// Whether the calling thread is one of the pool's: such a thread must
    /// not wait for the pool's jobs.
    pub(crate) fn is_current_thread_in_it(&self) -> bool {
        match self {
            IoPool::Own(pool) => pool.current_thread_index().is_some(),
            IoPool::Shared => ON_SHARED_THREAD.get(),
        }
    }
}

fn spawn_shared(job: impl FnOnce() + Send + 'static) {
    let mut shared = SHARED.lock();
    let free = shared
        .iter()
        .position(|member| member.jobs.load(Relaxed) < IO_THREADS);
    let index = match free {
        Some(index) => index,
        None if shared.len() < MAX_SHARED_POOLS => match new_member(shared.len()) {
            Ok(member) => {
                log::debug!(
                    "every shared I/O thread is busy: starting I/O pool {}",
                    shared.len() + 1
                );
                shared.push(member);
                shared.len() - 1
            }
            Err(err) => {
                log::warn!("{err}: jobs queue on the pools there are");
                least_loaded(&shared)
            }
        },
        None => least_loaded(&shared),
    };
    let Some(member) = shared.get(index) else {
        // `new` made the first pool before any job is spawned.
        return;
    };
    let jobs = member.jobs.clone();
    jobs.fetch_add(1, Relaxed);
    member.pool.spawn(move || {
        let _ended = JobEnd(jobs);
        job();
    });
}

/// Counts a job out of its pool when it ends, however it ends.
struct JobEnd(Arc<AtomicUsize>);

impl Drop for JobEnd {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn least_loaded(shared: &[Member]) -> usize {
    (0..shared.len())
        .min_by_key(|&i| shared[i].jobs.load(Relaxed))
        .unwrap_or(0)
}

fn new_member(number: usize) -> Result<Member> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(IO_THREADS)
        .thread_name(move |i| format!("prefetch-io-{}", number * IO_THREADS + i))
        .start_handler(|_| ON_SHARED_THREAD.set(true))
        .build()
        .map_err(|err| Error::Io {
            context: "cannot start an I/O thread pool".to_owned(),
            source: std::io::Error::other(err),
        })?;
    Ok(Member {
        pool,
        jobs: Arc::default(),
    })
}
