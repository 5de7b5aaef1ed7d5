//! The prefetch engine.
//!
//! Each [`PrefetchReader`](crate::PrefetchReader) owns one producer thread
//! ([`producer`]), the only place that decides what to fetch. The reader
//! tells it where it is and what it waits for through an unbounded channel of
//! events; fetch jobs report on the same channel when they end, and block
//! memory freed anywhere wakes it too, so the producer sleeps on one
//! `recv()` and never polls.
//!
//! For each request the [`policy`] allows, the producer takes a fresh
//! buffer for it, spawns a fetch job on the I/O pool, and sends the reader
//! a [`block`] naming the part the job fills. Blocks go through a bounded
//! channel in the order they were issued, so the reader gets bytes in
//! order whatever order the jobs complete in; a block is one range
//! request, and consecutive blocks are fetched in parallel and read in
//! place (never joined into a bigger buffer).
//!
//! Memory is charged as bytes arrive ([`admission`]), not when a request
//! is made: a buffer is an anonymous map whose pages the kernel provides
//! as they are first written, and each commit charges its bytes. The
//! producer makes a request only while what is charged plus what is still
//! to arrive of every request in flight fits in the budget, so the bytes
//! buffered never pass it; a stalled reader holds at most that, and a
//! request in flight costs nothing until its bytes come. Readers sharing a
//! [`MemoryBudget`](crate::MemoryBudget) check a second limit the same way:
//! each producer publishes what it reserved after every decision, and makes
//! a request only beside the others' within the shared limit, or within a
//! floor of one block of its own.
//!
//! How bytes travel: the job calls the source's
//! [`read_streaming`](crate::RangeSource::read_streaming) with a
//! [`PartSink`](crate::PartSink) over the part's buffer. The source reads
//! each chunk of the response body (64 KiB for HTTP, 1 MiB for files)
//! straight into the sink and commits it; a commit publishes the part's
//! new length (an atomic store, Release) and wakes a reader waiting on
//! the part. The reader takes the next block as soon as it is issued, lends
//! the committed bytes from `fill_buf` (no copy) and copies them once in
//! `read`, and waits on the part only for bytes not yet committed — so the
//! first byte of any part is readable about one round trip after its
//! request, whatever the part's size. Committed bytes are never written
//! again, and the bytes after them belong to the job alone. A part whose
//! sink is not full when the source returns is `Truncated`, never bytes
//! the source did not commit.
//!
//! A hard seek, an error or close ends an *epoch*: the reader sets the
//! epoch's cancel flag (which fetch jobs check between body chunks), drops
//! the epoch's blocks unread, and the next read starts a new epoch. Nothing
//! waits for abandoned jobs: their commits are refused from then on, and
//! what they had charged stays so until they end.
//!
//! Fetch jobs run on the caller's rayon pool (`ReaderBuilder::io_pool`)
//! or on the shared I/O pools ([`io_pool`]), kept apart from rayon's
//! global pool, which belongs to CPU work. Each reader keeps at most its
//! `concurrency` requests in flight. A request abandoned by a hard seek or
//! close counts against its reader's `concurrency` until it notices its
//! cancel flag — at the next body chunk, or at the source's read timeout
//! when a server stalls — and holds its pool thread until then; the shared
//! pools grow (within a cap) rather than let such stuck work starve other
//! readers.

pub(crate) mod admission;
pub(crate) mod block;
pub(crate) mod hints;
pub(crate) mod io_pool;
pub(crate) mod pace;
pub(crate) mod part_buffer;
pub(crate) mod policy;
pub(crate) mod producer;

pub use io_pool::IO_THREADS;
