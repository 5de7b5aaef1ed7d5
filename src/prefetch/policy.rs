//! The prefetch policy: what to request next, and how large; whether a seek
//! is soft or hard; when the reader tells the producer of each read. Pure:
//! no threads, no clocks, no I/O, and no setting but the plain [`Limits`];
//! the producer feeds it events and asks it for the next request, the
//! reader asks it what a seek is, and its tests replay traces.
//!
//! The reasoning, in order of precedence:
//! - `max_prefetch` caps everything: bytes allocated for blocks (abandoned
//!   ones included) and the window behind the reader together never exceed
//!   it, and no request is larger than fits beside the window behind.
//! - Demand first: the bytes the reader is waiting for are always requested,
//!   whatever the window. After open or a hard seek that is the read's size,
//!   rounded up to `first_request_size`, so the first byte comes back in one
//!   round trip and random reads fetch what they read.
//! - Read-ahead starts at the [`READAHEAD_AFTER_READS`]th read in a row
//!   without a hard seek. Its parts start at `min_part_size` and double with
//!   each completed part (under [`Advice::Sequential`], at once), towards
//!   the size the link asks for: a part costs a
//!   round trip before its first byte, so a connection is busy
//!   `(s/bw) / (rtt + s/bw)` of the time; [`PART_ROUND_TRIPS`] round trips'
//!   worth of bytes keeps it 97 % busy. The running average of read sizes is
//!   a floor (a caller reading 16 MiB at a time gets 16 MiB parts).
//! - Parts are never larger than lets the window hold one part per
//!   connection plus the block being read, so a larger `max_prefetch` buys
//!   larger parts (and busier connections), and the window never ends in a
//!   sliver of a part that would pay a round trip for little.
//! - Near the end of the object parts shrink to share what is left to
//!   transfer (not yet requested, or requested and not yet arrived) among
//!   the connections, so they finish together rather than one long part
//!   finishing alone.
//! - The window ahead is `concurrency + 1` parts: one per connection, and
//!   the block the reader is in.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

/// Read-ahead starts at this many reads in a row without a hard seek.
/// Fewer and random readers (a read after each seek) would pay for data
/// they never read; more and sequential readers wait longer for full speed.
pub(crate) const READAHEAD_AFTER_READS: u32 = 3;

/// The farthest a seek forward into requests still in flight waits for
/// them (a soft seek) rather than starting afresh at the target (a hard
/// one): 16 MiB, as Mountpoint's `max_forward_seek_wait_distance`. Past
/// it, waiting for a long transfer to reach the target costs more than a
/// new request's round trip.
pub(crate) const MAX_FORWARD_SEEK_WAIT_DISTANCE: u64 = 16 << 20;

/// The settings the policy decides within, validated by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most requests in flight.
    pub(crate) concurrency: usize,
    /// Most bytes for blocks and the window behind together.
    pub(crate) max_prefetch: u64,
    /// Smallest read-ahead part.
    pub(crate) min_part: u64,
    /// Largest request.
    pub(crate) max_part: u64,
    /// Smallest first request after open or a hard seek.
    pub(crate) first_request: u64,
    /// Bytes kept behind the reader.
    pub(crate) window_behind: u64,
}

impl Limits {
    /// The limits over a source that reads one stream front to back (its
    /// server ignores byte ranges): one request in flight, so requests
    /// reach the stream in the order they were made.
    pub(crate) fn for_source(self, supports_ranges: bool) -> Limits {
        if supports_ranges {
            self
        } else {
            Limits {
                concurrency: 1,
                ..self
            }
        }
    }
}

/// Where the reader's bytes are when it reads after a seek: what
/// [`classify_seek`] decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeekView {
    /// Whether this epoch's first request was asked for.
    pub(crate) started: bool,
    /// Where the seek went.
    pub(crate) target: u64,
    /// Where the reader was before it (where its buffers were left).
    pub(crate) from: u64,
    /// The lowest offset still buffered (window behind, block being read).
    pub(crate) buffered_from: u64,
    /// Where the next block of this epoch starts.
    pub(crate) next_offset: u64,
    /// The end of what this epoch requested, as the producer last said;
    /// `None` when what it said was of another epoch.
    pub(crate) requested_end: Option<u64>,
}

/// What a seek is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekKind {
    /// Served by what is buffered or in flight: nothing abandoned.
    Soft,
    /// Abandons the epoch: a new one starts at the target.
    Hard,
    /// Nothing was asked for yet: nothing to keep or abandon.
    Unstarted,
}

/// Soft when the target is buffered (or is where the next block starts),
/// or lies ahead in requests of this epoch no further than
/// [`MAX_FORWARD_SEEK_WAIT_DISTANCE`] past the next block; hard otherwise,
/// backward past the window behind included.
pub(crate) fn classify_seek(view: SeekView) -> SeekKind {
    if !view.started {
        return SeekKind::Unstarted;
    }
    let in_buffers = view.target >= view.buffered_from && view.target <= view.next_offset;
    let in_flight = view.target > view.from
        && view.target.saturating_sub(view.next_offset) <= MAX_FORWARD_SEEK_WAIT_DISTANCE
        && view.requested_end.is_some_and(|end| view.target < end);
    if in_buffers || in_flight {
        SeekKind::Soft
    } else {
        SeekKind::Hard
    }
}

/// Whether the reader tells the producer of every read at this point of
/// its streak (reads in a row since a hard seek): early on, so read-ahead
/// starts on time; later the producer hears of it per block.
pub(crate) fn reports_every_read(streak: u32) -> bool {
    streak <= READAHEAD_AFTER_READS
}

/// How many recent read sizes the running average covers, as gcsfs.
const READ_SIZE_HISTORY: usize = 10;

/// A part of this many round trips' worth of bytes keeps its connection
/// busy 32/33 = 97 % of the time (memory permitting: see `part_cap`).
const PART_ROUND_TRIPS: f64 = 32.0;

/// The largest read-ahead part until both the link's bandwidth and the
/// reader's pace are measured (a part or two shows both): the window of
/// such parts is small, so a reader slower than the link does not have
/// the whole budget fetched for it before its pace is known.
const UNMEASURED_PART: u64 = 2 << 20;

/// Gaps between hinted ranges narrower than this are fetched with them
/// until the link is measured (then: its round trip × bandwidth): 1 MiB,
/// as Arrow's `ReadRangeCache` and parquet's default coalescing.
pub(crate) const DEFAULT_HINT_GAP: u64 = 1 << 20;

/// The most requests one `will_need` call is planned into: what comes
/// after them is read as if not hinted. Bounds the plan's memory (a few
/// MiB) whatever ranges a caller passes.
pub(crate) const MAX_HINT_PARTS: usize = 65_536;

/// Weight of a new sample in the link estimates: recent parts matter most,
/// one slow part does not swing the size.
const LINK_SAMPLE_WEIGHT: f64 = 0.25;

/// Transfers shorter than this say little about bandwidth (the clock's
/// grain and scheduling noise dominate), so they are not sampled.
const MIN_BANDWIDTH_SAMPLE: Duration = Duration::from_micros(500);

/// The running average of the last [`READ_SIZE_HISTORY`] read sizes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadSizes {
    history: VecDeque<u64>,
    sum: u64,
}

impl ReadSizes {
    pub(crate) fn add(&mut self, size: u64) {
        if self.history.len() == READ_SIZE_HISTORY {
            self.sum -= self.history.pop_front().unwrap_or(0);
        }
        self.history.push_back(size);
        self.sum += size;
    }

    /// The average, or 0 with no history.
    pub(crate) fn average(&self) -> u64 {
        match self.history.len() {
            0 => 0,
            n => self.sum / n as u64,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.history.clear();
        self.sum = 0;
    }
}

/// Time to first byte and per-connection bandwidth, measured as parts
/// complete; kept across seeks (the link does not change with them).
#[derive(Debug, Default, Clone)]
pub(crate) struct LinkEstimate {
    rtt_secs: Option<f64>,
    bytes_per_sec: Option<f64>,
}

impl LinkEstimate {
    fn blend(old: Option<f64>, sample: f64) -> Option<f64> {
        Some(match old {
            None => sample,
            Some(old) => old + LINK_SAMPLE_WEIGHT * (sample - old),
        })
    }

    /// Records one completed request of `bytes`, whose first byte came after
    /// `ttfb` and whose last came after `total`.
    pub(crate) fn record(&mut self, ttfb: Duration, total: Duration, bytes: u64) {
        self.rtt_secs = Self::blend(self.rtt_secs, ttfb.as_secs_f64());
        let transfer = total.saturating_sub(ttfb);
        if transfer >= MIN_BANDWIDTH_SAMPLE && bytes > 0 {
            self.bytes_per_sec =
                Self::blend(self.bytes_per_sec, bytes as f64 / transfer.as_secs_f64());
        }
    }

    /// The bytes one connection carries in a round trip, once both are
    /// known: a gap narrower than this costs less to fetch than a request.
    pub(crate) fn round_trip_bytes(&self) -> Option<u64> {
        let bytes = self.rtt_secs? * self.bytes_per_sec?;
        Some(bytes.min(u64::MAX as f64) as u64)
    }

    /// How many connections carry `pace` bytes per second, once the
    /// bandwidth of one is known.
    pub(crate) fn connections_for(&self, pace: u64) -> Option<u64> {
        let connections = pace as f64 / self.bytes_per_sec?;
        Some(connections.ceil().min(u64::MAX as f64) as u64)
    }

    /// The part size that keeps a connection 95 % busy, once both the round
    /// trip and the bandwidth are known.
    pub(crate) fn part_size(&self) -> Option<u64> {
        let bytes = PART_ROUND_TRIPS * self.rtt_secs? * self.bytes_per_sec?;
        Some(bytes.min(u64::MAX as f64) as u64)
    }
}

/// One range request the producer should make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// Whether it is read-ahead (its completion grows the part size) rather
    /// than demand.
    pub(crate) readahead: bool,
}

/// How much the reader expects to read ahead of where it is: the caller's
/// word through [`PrefetchReader::advise`](crate::PrefetchReader::advise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Advice {
    /// Read ahead in proportion to what the reader consumed: after a seek,
    /// the first request is the read's size (rounded up to
    /// `first_request_size`); from the third read on, requests reach at
    /// most as far ahead as the bytes read in order since the seek, so the
    /// window doubles each time the reader catches up, up to what the link
    /// needs and the budget allows. An idle reader sets off nothing more,
    /// and a run of N bytes after a seek fetches about 2 N at most. The
    /// default.
    #[default]
    Normal,
    /// Fill the whole window from the first read: for whole-object reads
    /// (`prefetch cat`, `get` and `bench` use it).
    Sequential,
    /// Never read ahead: each read fetches what it needs (rounded up to
    /// `first_request_size`).
    Random,
}

/// What the reader last said about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReaderState {
    /// Where the bytes the reader still needs start.
    pub(crate) pos: u64,
    /// How many bytes it is waiting for from `pos` (at least one).
    pub(crate) want: u64,
    /// Reads in a row since the last hard seek.
    pub(crate) streak: u32,
    /// Running average of its read sizes.
    pub(crate) io_size: u64,
    /// Bytes it consumed in order since its last seek: under
    /// [`Advice::Normal`], how far ahead of it requests may reach.
    pub(crate) run: u64,
    /// How fast it consumes bytes that are ready, in bytes per second (0
    /// until measured).
    pub(crate) pace: u64,
    /// What it said to expect.
    pub(crate) advice: Advice,
}

/// The scheduling state of one reader, for its current epoch (the span
/// between hard seeks).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    concurrency: usize,
    max_prefetch: u64,
    min_part: u64,
    max_part: u64,
    first_request: u64,
    window_behind: u64,
    object_len: u64,
    reader: ReaderState,
    /// End of everything requested this epoch.
    frontier: u64,
    /// Bytes requested this epoch that have not arrived yet.
    unarrived: u64,
    /// The read-ahead part size before the link's limit: doubles per
    /// completed read-ahead part.
    ramp: u64,
    /// Read-ahead requests made this epoch once measured, counted up to
    /// `concurrency`: where the first wave's staggering is.
    wave: u64,
    link: LinkEstimate,
    /// The current hints' byte ranges, sorted and apart.
    hinted: Vec<Range<u64>>,
}

impl Policy {
    pub(crate) fn new(limits: Limits, object_len: u64) -> Policy {
        Policy {
            concurrency: limits.concurrency,
            max_prefetch: limits.max_prefetch,
            min_part: limits.min_part,
            max_part: limits.max_part,
            first_request: limits.first_request,
            window_behind: limits.window_behind,
            object_len,
            reader: ReaderState::default(),
            frontier: 0,
            unarrived: 0,
            ramp: limits.min_part,
            wave: 0,
            link: LinkEstimate::default(),
            hinted: Vec::new(),
        }
    }

    /// Starts a new epoch at `reader.pos`: nothing requested, part sizes
    /// back to the start of their ramp.
    pub(crate) fn restart(&mut self, reader: ReaderState) {
        self.reader = reader;
        self.frontier = reader.pos.min(self.object_len);
        self.unarrived = 0;
        self.ramp = self.min_part;
        self.wave = 0;
    }

    /// The reader moved on, or needs more.
    pub(crate) fn progress(&mut self, reader: ReaderState) {
        self.reader = reader;
    }

    /// A request of this epoch completed.
    pub(crate) fn completed(&mut self, request: Request, ttfb: Duration, total: Duration) {
        self.link.record(ttfb, total, request.len);
        if request.readahead {
            self.ramp = self.ramp.saturating_mul(2).min(self.max_part);
        }
    }

    /// How many bytes requested this epoch have not arrived yet, as the
    /// producer last counted.
    pub(crate) fn set_unarrived(&mut self, bytes: u64) {
        self.unarrived = bytes;
    }

    /// End of everything requested this epoch.
    pub(crate) fn frontier(&self) -> u64 {
        self.frontier
    }

    /// Whether the byte the reader is at is not asked for yet this epoch:
    /// its demand request then goes before hinted ones, so a read outside
    /// the hints never waits for the whole plan.
    pub(crate) fn demand_waiting(&self) -> bool {
        self.frontier <= self.reader.pos && self.reader.pos < self.object_len
    }

    /// Most requests in flight.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Most bytes that may be allocated for blocks at once: the budget
    /// less the window behind the reader.
    pub(crate) fn memory_limit(&self) -> u64 {
        self.max_prefetch - self.window_behind
    }

    /// Most bytes hinted parts may hold at once (the part the reader
    /// waits for included): the memory limit less the room kept for one
    /// demand block, so a read outside the hints always finds room.
    pub(crate) fn hint_limit(&self) -> u64 {
        self.memory_limit() - self.demand_room()
    }

    /// The room kept for a demand block beside hints: a block of
    /// `max_part_size`, or half the memory limit when that is less.
    fn demand_room(&self) -> u64 {
        (self.memory_limit() / 2).max(1).min(self.max_part)
    }

    /// The largest hinted part: a read-ahead part, and small enough that
    /// hinted parts run in the background within
    /// [`hint_limit`](Self::hint_limit).
    fn hint_part(&self) -> u64 {
        self.part_cap().min(self.hint_limit()).max(1)
    }

    /// The largest block that fits beside the window behind (and, while
    /// there are hints, in the room kept beside them): no request is
    /// larger, so a read of any size is served within the budget.
    fn largest_block(&self) -> u64 {
        if self.hinted.is_empty() {
            self.memory_limit().min(self.max_part)
        } else {
            self.demand_room()
        }
    }

    /// What this reader may reserve whatever the other readers sharing a
    /// budget hold: one block, so a read always finds room; while there
    /// are hints, the whole memory limit, within which they were planned
    /// beside the room for a read (the parts it holds could otherwise
    /// leave no floor for the read it waits on).
    pub(crate) fn shared_floor(&self) -> u64 {
        if self.hinted.is_empty() {
            self.largest_block()
        } else {
            self.memory_limit()
        }
    }

    /// The largest read-ahead part: what lets the window hold one part per
    /// connection plus the block being read, within `max_part_size`, and
    /// never below `min_part_size`.
    fn part_cap(&self) -> u64 {
        let fits = (self.max_prefetch - self.window_behind) / (self.concurrency as u64 + 1);
        fits.min(self.max_part).max(self.min_part)
    }

    /// The size of read-ahead parts in the middle of the object now.
    fn steady_part(&self) -> u64 {
        let cap = self.part_cap();
        let floor = self.reader.io_size.clamp(self.min_part, cap);
        let target = self.link.part_size().unwrap_or(cap);
        let target = if self.measured() {
            target
        } else {
            target.min(UNMEASURED_PART)
        };
        // A reader that reads the whole object gets full parts at once:
        // it reads a part's first bytes one round trip after the request,
        // whatever the part's size, and never stops early.
        let ramp = match self.reader.advice {
            Advice::Sequential => u64::MAX,
            Advice::Normal | Advice::Random => self.ramp,
        };
        ramp.min(target).clamp(floor, cap)
    }

    /// The size of the next read-ahead part: the steady size, or near the
    /// end of the object a share per connection of what is left to
    /// transfer (not yet requested, or requested and not yet arrived), so
    /// the connections finish together.
    fn readahead_part(&self) -> u64 {
        let left = (self.object_len - self.frontier).saturating_add(self.unarrived);
        let share = left.div_ceil(self.concurrency as u64);
        let steady = self.steady_part();
        // Near the end the shares keep the connections together instead.
        let part = if share >= steady {
            self.staggered(steady)
        } else {
            steady.min(share.max(self.min_part))
        };
        match self.reader.advice {
            // The window is the run: parts a share of it, so it holds one
            // per connection and they all stay busy while it grows.
            Advice::Normal => {
                let per_connection = self.reader.run / (self.concurrency as u64 + 1);
                part.min(per_connection.max(self.min_part))
            }
            Advice::Sequential | Advice::Random => part,
        }
    }

    /// Whether both the link's bandwidth and the reader's pace are known:
    /// until then parts are at most [`UNMEASURED_PART`].
    fn measured(&self) -> bool {
        self.reader.pace > 0 && self.link.bytes_per_sec.is_some()
    }

    /// `part`, cut for the first wave of an epoch (of parts sized once
    /// the link and the pace are measured): its k-th read-ahead part
    /// of `concurrency` is k/`concurrency` of `part` (never below
    /// `min_part_size`; a read larger than a part waits on several, all
    /// in flight). Parts of one size started together end together,
    /// so the reader, which takes them in order, would find the whole
    /// window arrived at once, and every connection would wait on a round
    /// trip at the same moment; staggered, they end one after another, and
    /// the bytes arrived ahead of a reader keeping pace are about half the
    /// window.
    fn staggered(&self, part: u64) -> u64 {
        let connections = self.concurrency as u64;
        if self.wave >= connections || !self.measured() {
            return part;
        }
        let step = part.saturating_mul(self.wave + 1) / connections;
        step.clamp(self.min_part.min(part), part)
    }

    /// How far ahead of the reader read-ahead reaches now: one part per
    /// connection plus the one being read (for a reader slower than the
    /// link, per connection its pace needs plus one), within the budget,
    /// and under [`Advice::Normal`] no further than the reader's run.
    fn window(&self) -> u64 {
        let cap = self.max_prefetch - self.window_behind;
        // A reader slower than the link needs the connections its pace
        // fills and one more, not all of them: it would only hold what
        // the others fetched.
        let connections = match self.reader.pace {
            0 => None,
            pace => self.link.connections_for(pace),
        };
        let parts = connections.map_or(self.concurrency as u64, |needed| {
            needed.saturating_add(1).min(self.concurrency as u64)
        });
        let full = (parts + 1).saturating_mul(self.steady_part()).min(cap);
        match self.reader.advice {
            Advice::Normal => full.min(self.reader.run),
            Advice::Sequential | Advice::Random => full,
        }
    }

    /// Whether requests reach ahead of what the reader waits for.
    fn reads_ahead(&self) -> bool {
        match self.reader.advice {
            Advice::Normal => self.reader.streak >= READAHEAD_AFTER_READS,
            Advice::Sequential => true,
            Advice::Random => false,
        }
    }

    /// The size of the next demand request, for `need` bytes the reader
    /// waits for: split so up to `concurrency` parts run at once, none
    /// smaller than `min_part_size` unless the need is.
    fn demand_part(&self, need: u64) -> u64 {
        let parts = (need / self.min_part).clamp(1, self.concurrency as u64);
        need.div_ceil(parts)
            .max(self.first_request)
            .min(self.largest_block())
    }

    /// The next request to make, given the requests in flight (abandoned
    /// ones included) and the bytes allocated for blocks; `None` to wait
    /// for the next event.
    pub(crate) fn next_request(&self, in_flight: usize, allocated: u64) -> Option<Request> {
        if in_flight >= self.concurrency || self.frontier >= self.object_len {
            return None;
        }
        let demand_end = self
            .reader
            .pos
            .saturating_add(self.reader.want)
            .min(self.object_len);
        let readahead = self.reads_ahead();
        let len = if self.frontier < demand_end {
            let demand = self.demand_part(demand_end - self.frontier);
            match (readahead, self.reader.advice) {
                (false, _) => demand,
                // What the reader waits for, grown to its run (the window
                // it has earned), never past a read-ahead part.
                (true, Advice::Normal) => self.readahead_part().min(demand.max(self.reader.run)),
                (true, _) => self.readahead_part(),
            }
            // A read-ahead part may be larger than the room kept for
            // what the reader waits for beside hints; the demand never is.
            .min(self.largest_block())
        } else if readahead {
            let ahead = self.frontier.saturating_sub(self.reader.pos);
            let room = self.window().saturating_sub(ahead);
            let full = self.readahead_part();
            let part = full.min(room);
            // A sliver of a part costs a round trip for little: wait until
            // the reader frees room for most of one (or the object ends).
            if part < self.min_part.max(full / 2) && self.frontier + part < self.object_len {
                return None;
            }
            part
        } else {
            return None;
        };
        let len = self.short_of_hints(len.min(self.object_len - self.frontier), demand_end);
        if len == 0 || allocated.saturating_add(len) > self.memory_limit() {
            return None;
        }
        Some(Request {
            offset: self.frontier,
            len,
            readahead,
        })
    }

    /// `len` bytes from the frontier, cut where a hinted range ahead of the
    /// reader begins past `demand_end`: the hints fetch it, so read-ahead
    /// stops at its start. What the reader waits for is never cut, and
    /// read-ahead of a reader inside a hinted range (reading it anew, its
    /// parts gone) goes on.
    fn short_of_hints(&self, len: u64, demand_end: u64) -> u64 {
        let from = self.frontier.max(demand_end);
        let end = self.frontier + len;
        let at = self.hinted.partition_point(|r| r.end <= from);
        match self.hinted.get(at) {
            Some(r) if self.reader.pos < r.start && r.start < end => {
                (r.start.max(from) - self.frontier).min(len)
            }
            _ => len,
        }
    }

    /// The current hints are these requests: read-ahead leaves their
    /// bytes to them.
    pub(crate) fn set_hinted(&mut self, plan: &[Request]) {
        let mut ranges: Vec<Range<u64>> = plan.iter().map(|r| r.offset..r.offset + r.len).collect();
        ranges.sort_unstable_by_key(|r| r.start);
        self.hinted.clear();
        for range in ranges {
            match self.hinted.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => self.hinted.push(range),
            }
        }
    }

    /// The requests that fetch the caller's hinted `ranges`, in the order
    /// given: clipped to the object, merged where they overlap or the gap
    /// between them costs less than a round trip (the link's round trip ×
    /// bandwidth, [`DEFAULT_HINT_GAP`] until measured), split into parts
    /// of at most the read-ahead part size (and what hinted parts may hold
    /// at once) so they run in parallel; at most [`MAX_HINT_PARTS`]. The
    /// plan may be larger than the budget: the producer fetches it in
    /// order as room comes.
    pub(crate) fn plan_hints(&self, ranges: &[Range<u64>]) -> Vec<Request> {
        // Each range with its place in the caller's order.
        let mut clipped: Vec<(u64, u64, usize)> = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| (r.start.min(self.object_len), r.end.min(self.object_len), i))
            .filter(|(start, end, _)| start < end)
            .collect();
        clipped.sort_unstable();
        let gap = self.link.round_trip_bytes().unwrap_or(DEFAULT_HINT_GAP);
        let mut merged: Vec<(u64, u64, usize)> = Vec::with_capacity(clipped.len());
        for (start, end, place) in clipped {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(gap) => {
                    last.1 = last.1.max(end);
                    last.2 = last.2.min(place);
                }
                _ => merged.push((start, end, place)),
            }
        }
        // Fetched in the order given: a merged range where its first range was.
        merged.sort_by_key(|&(_, _, place)| place);
        let part = self.hint_part();
        let mut plan = Vec::new();
        for (start, end, _) in merged {
            let parts = (end - start).div_ceil(part);
            let each = (end - start).div_ceil(parts);
            let mut offset = start;
            while offset < end {
                if plan.len() == MAX_HINT_PARTS {
                    return plan;
                }
                let len = each.min(end - offset);
                plan.push(Request {
                    offset,
                    len,
                    readahead: false,
                });
                offset += len;
            }
        }
        plan
    }

    /// The producer made `request`.
    pub(crate) fn issued(&mut self, request: Request) {
        debug_assert_eq!(request.offset, self.frontier);
        self.frontier += request.len;
        self.unarrived = self.unarrived.saturating_add(request.len);
        if request.readahead && self.measured() {
            self.wave = (self.wave + 1).min(self.concurrency as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn policy(len: u64) -> Policy {
        Policy::new(Config::default().limits(), len)
    }

    /// A policy whose link is measured: 1 GiB/s per connection, 20 ms to
    /// first byte, asking for parts larger than any cap.
    fn measured(len: u64) -> Policy {
        let mut p = policy(len);
        let ttfb = Duration::from_millis(20);
        p.link.record(ttfb, ttfb + Duration::from_secs(1), 1 << 30);
        p
    }

    /// A reader under [`Advice::Normal`] with an unlimited run: read-ahead
    /// by the streak alone.
    fn state(pos: u64, want: u64, streak: u32, io_size: u64) -> ReaderState {
        ReaderState {
            pos,
            want,
            streak,
            io_size,
            run: u64::MAX,
            pace: u64::MAX,
            advice: Advice::Normal,
        }
    }

    /// Issues every request the policy allows right now (none completing).
    fn drain(policy: &mut Policy) -> Vec<Request> {
        let mut out = Vec::new();
        let mut allocated = 0;
        while let Some(request) = policy.next_request(out.len(), allocated) {
            policy.issued(request);
            allocated += request.len;
            out.push(request);
        }
        out
    }

    #[test]
    fn running_average_covers_the_last_ten_reads() {
        let mut sizes = ReadSizes::default();
        assert_eq!(sizes.average(), 0);
        sizes.add(512);
        sizes.add(512);
        sizes.add(2048);
        assert_eq!(sizes.average(), 1024);
        for _ in 0..10 {
            sizes.add(10);
        }
        assert_eq!(sizes.average(), 10);
        sizes.clear();
        assert_eq!(sizes.average(), 0);
    }

    #[test]
    fn first_request_is_the_read_rounded_up_to_the_minimum() {
        let mut p = policy(100 * MIB);
        p.restart(state(5 * MIB, 8 * KIB, 1, 8 * KIB));
        let trace = drain(&mut p);
        assert_eq!(
            trace,
            vec![Request {
                offset: 5 * MIB,
                len: 16 * KIB,
                readahead: false
            }]
        );
    }

    #[test]
    fn a_first_read_of_a_few_mebibytes_is_split_but_never_below_the_minimum_part() {
        let mut p = policy(100 * MIB);
        p.restart(state(0, 3 * MIB + 5, 1, 3 * MIB + 5));
        let trace = drain(&mut p);
        assert_eq!(trace.len(), 3);
        assert!(trace.iter().all(|r| r.len >= MIB && !r.readahead));
        assert_eq!(trace.iter().map(|r| r.len).sum::<u64>(), 3 * MIB + 5);
    }

    #[test]
    fn a_first_read_below_the_minimum_part_is_one_request() {
        let mut p = policy(100 * MIB);
        p.restart(state(0, 900 * KIB, 1, 900 * KIB));
        assert_eq!(drain(&mut p).len(), 1);
    }

    #[test]
    fn no_readahead_before_the_third_read() {
        let mut p = policy(100 * MIB);
        p.restart(state(0, 8 * KIB, 1, 8 * KIB));
        assert_eq!(drain(&mut p).len(), 1);
        p.progress(state(8 * KIB, 8 * KIB, 2, 8 * KIB));
        assert!(
            drain(&mut p).is_empty(),
            "second read is served from the first request"
        );
        p.progress(state(16 * KIB, 8 * KIB, 3, 8 * KIB));
        let trace = drain(&mut p);
        // The window is 17 parts from the reader, whom the first request
        // has just reached; a sliver of a part is not worth a request.
        assert_eq!(trace.len(), 16, "third read starts read-ahead");
        assert!(trace.iter().all(|r| r.readahead && r.len == MIB));
        assert!(trace.last().map_or(0, |r| r.offset + r.len) <= 16 * KIB + 17 * MIB);
        assert_eq!(trace[0].offset, 16 * KIB);
    }

    #[test]
    fn readahead_parts_double_as_they_complete_up_to_the_maximum() {
        let mut p = measured(1 << 40);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        // Past the first wave's staggering.
        p.wave = p.concurrency as u64;
        let mut sizes = Vec::new();
        for _ in 0..8 {
            let request = p.next_request(0, 0).expect("room");
            p.issued(request);
            sizes.push(request.len);
            // No new bandwidth sample: only the ramp limits the size.
            p.completed(request, Duration::ZERO, Duration::ZERO);
            p.progress(state(p.frontier(), 8 * KIB, 4, 8 * KIB));
        }
        // Capped at 15 MiB: 17 parts fit the default 255 MiB window.
        assert_eq!(sizes[..5], [MIB, 2 * MIB, 4 * MIB, 8 * MIB, 15 * MIB]);
        assert_eq!(sizes[5..], [15 * MIB, 15 * MIB, 15 * MIB]);
    }

    #[test]
    fn read_ahead_stays_small_until_measured_then_fits_a_slow_readers_pace() {
        let sequential = |pace| ReaderState {
            pace,
            advice: Advice::Sequential,
            ..state(0, 64 * KIB, 3, 64 * KIB)
        };
        // Neither the pace nor the link known: parts of at most 2 MiB.
        let mut p = policy(1 << 40);
        p.restart(sequential(0));
        let unmeasured = drain(&mut p);
        assert!(unmeasured.iter().all(|r| r.len <= UNMEASURED_PART));
        // The link known, the pace not: still small.
        let mut p = measured(1 << 40);
        p.restart(sequential(0));
        assert!(drain(&mut p).iter().all(|r| r.len <= UNMEASURED_PART));
        // Both known, a reader as fast as the link: the whole window.
        let cap = policy(1 << 40).part_cap();
        let mut p = measured(1 << 40);
        p.restart(sequential(u64::MAX));
        assert_eq!(p.window(), 17 * cap);
        // A reader at 1.5 connections' pace: two connections and one more,
        // plus the part being read.
        let mut p = measured(1 << 40);
        p.restart(sequential(3 << 29));
        assert_eq!(p.window(), 4 * cap);
    }

    #[test]
    fn link_estimate_sizes_parts_for_a_busy_connection() {
        let mut link = LinkEstimate::default();
        assert_eq!(link.part_size(), None);
        // 20 ms to first byte, then 1 MiB in 20 ms: 50 MiB/s.
        link.record(Duration::from_millis(20), Duration::from_millis(40), MIB);
        let size = link.part_size().expect("measured");
        assert_eq!(size, 32 * MIB, "32 round trips of 1 MiB");
    }

    #[test]
    fn fast_links_keep_parts_at_the_minimum() {
        let mut p = policy(1 << 40);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        for _ in 0..10 {
            let request = p.next_request(0, 0).expect("room");
            p.issued(request);
            // 10 µs to first byte, 1 GiB/s.
            p.completed(request, Duration::from_micros(10), Duration::from_millis(1));
        }
        assert_eq!(p.readahead_part(), MIB);
    }

    #[test]
    fn read_size_average_is_a_floor_for_parts_past_the_first_wave() {
        let mut p = policy(1 << 40);
        p.restart(state(0, 8 * MIB, 3, 8 * MIB));
        p.wave = p.concurrency as u64;
        let trace = drain(&mut p);
        assert!(trace.iter().all(|r| r.len == 8 * MIB), "{trace:?}");
    }

    #[test]
    fn never_past_the_end_of_the_object() {
        let mut p = policy(3 * MIB + 7);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        let trace = drain(&mut p);
        assert_eq!(trace.last().map(|r| r.offset + r.len), Some(3 * MIB + 7));
        assert!(p.next_request(0, 0).is_none());
    }

    #[test]
    fn never_more_than_the_window_ahead_of_the_reader() {
        let config = Config {
            max_prefetch: 8 * MIB,
            max_part_size: 4 * MIB,
            concurrency: 64,
            ..Config::default()
        };
        let mut p = Policy::new(config.limits(), 1 << 40);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        let trace = drain(&mut p);
        let end = trace.last().map_or(0, |r| r.offset + r.len);
        assert!(
            end <= 8 * MIB - MIB,
            "window is max_prefetch - window_behind: {end}"
        );
        // The reader moves on by 2 MiB: room for two more parts.
        p.progress(state(2 * MIB, 8 * KIB, 40, 8 * KIB));
        let more = drain(&mut p);
        assert_eq!(more.iter().map(|r| r.len).sum::<u64>(), 2 * MIB);
    }

    #[test]
    fn a_source_without_ranges_gets_one_request_at_a_time_in_order() {
        let limits = Config::default().limits();
        assert_eq!(limits.for_source(true), limits);
        let mut p = Policy::new(limits.for_source(false), 100 * MIB);
        p.restart(ReaderState {
            advice: Advice::Sequential,
            ..state(0, 64 * KIB, 0, 64 * KIB)
        });
        let first = p.next_request(0, 0).expect("demand");
        assert_eq!(first.offset, 0);
        p.issued(first);
        assert_eq!(p.next_request(1, first.len), None);
        let second = p.next_request(0, first.len).expect("read-ahead");
        assert_eq!(second.offset, first.len);
    }

    #[test]
    fn never_more_than_concurrency_requests_in_flight() {
        let mut p = policy(1 << 40);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        assert!(p.next_request(16, 0).is_none());
        assert!(p.next_request(15, 0).is_some());
    }

    #[test]
    fn allocated_bytes_over_the_limit_hold_requests_back() {
        let mut p = policy(1 << 40);
        p.restart(state(0, 8 * KIB, 1, 8 * KIB));
        assert!(p.next_request(0, p.memory_limit()).is_none());
        assert!(p.next_request(0, p.memory_limit() - 16 * KIB).is_some());
    }

    #[test]
    fn demand_is_served_even_when_the_window_is_full() {
        let mut p = policy(1 << 40);
        p.restart(state(0, 8 * KIB, 3, 8 * KIB));
        drain(&mut p);
        let frontier = p.frontier();
        // A read of 300 MiB reaches past everything requested.
        p.progress(state(frontier - 1, 300 * MIB, 4, 300 * MIB));
        let request = p.next_request(0, 0).expect("demand");
        assert_eq!(request.offset, frontier);
        assert_eq!(request.len, p.part_cap());
    }

    #[test]
    fn parts_fit_one_per_connection_plus_the_block_being_read() {
        // 255 MiB of window for 17 parts: 15 MiB each.
        assert_eq!(policy(1 << 40).part_cap(), 15 * MIB);
        // A larger budget buys larger parts, up to max_part_size.
        let config = Config {
            max_prefetch: 512 * MIB,
            max_part_size: 64 * MIB,
            ..Config::default()
        };
        assert_eq!(
            Policy::new(config.limits(), 1 << 40).part_cap(),
            511 * MIB / 17
        );
    }

    #[test]
    fn steady_readahead_makes_no_slivers() {
        let mut p = policy(1 << 40);
        p.restart(state(0, MIB, 3, MIB));
        let mut pos = 0;
        for round in 0..200 {
            let trace = drain(&mut p);
            // Once the ramp is over, no part is less than half the cap.
            if round > 10 {
                assert!(trace.iter().all(|r| r.len >= p.part_cap() / 2), "{trace:?}");
            }
            for request in trace {
                p.completed(
                    request,
                    Duration::from_millis(20),
                    Duration::from_millis(300),
                );
            }
            pos += 5 * MIB;
            p.progress(state(pos, MIB, 10, MIB));
        }
    }

    #[test]
    fn hints_are_clipped_merged_across_small_gaps_and_split_into_parts() {
        let p = policy(100 * MIB);
        let plan = p.plan_hints(&[
            90 * MIB..200 * MIB,
            10 * MIB..10 * MIB + 100,
            5..5,
            10 * MIB + 600 * KIB..11 * MIB,
            0..4 * KIB,
        ]);
        let spans: Vec<_> = plan.iter().map(|r| (r.offset, r.offset + r.len)).collect();
        // In the order given: 90..100 MiB (clipped) in one part; the two
        // near 10 MiB in one request (the gap is under a round trip's
        // worth); 0..4K alone.
        assert_eq!(
            spans,
            [(90 * MIB, 100 * MIB), (10 * MIB, 11 * MIB), (0, 4 * KIB)]
        );
        assert!(plan.iter().all(|r| !r.readahead));

        // A range larger than a part is split into equal parts that run at
        // once, all of it, beyond the budget too (fetched as room comes).
        let p = policy(1 << 30);
        let whole = 0..1 << 30;
        let plan = p.plan_hints(std::slice::from_ref(&whole));
        assert!(plan.iter().all(|r| r.len <= p.part_cap()), "{plan:?}");
        let total: u64 = plan.iter().map(|r| r.len).sum();
        assert_eq!(total, 1 << 30);
        assert!(plan
            .windows(2)
            .all(|w| w[0].offset + w[0].len == w[1].offset));
        assert!(p.plan_hints(&[]).is_empty());
    }

    #[test]
    fn read_ahead_stops_where_a_hint_begins_but_never_cuts_a_demand() {
        let mut p = policy(64 * MIB);
        let hint = Request {
            offset: 8 * MIB,
            len: 2 * MIB,
            readahead: false,
        };
        p.set_hinted(&[hint]);
        p.restart(state(6 * MIB, 64 * KIB, 40, 64 * KIB));
        let ahead = drain(&mut p);
        let end = ahead.last().map_or(0, |r| r.offset + r.len);
        assert_eq!(end, 8 * MIB, "{ahead:?}");
        // A demand reaching into the hint is asked for whole.
        let mut p = policy(64 * MIB);
        p.set_hinted(&[hint]);
        p.restart(state(8 * MIB - KIB, 64 * KIB, 0, 64 * KIB));
        let demand = drain(&mut p);
        let end = demand.last().map_or(0, |r| r.offset + r.len);
        assert!(end >= 8 * MIB + 63 * KIB, "{demand:?}");
        // From inside a hinted range (read anew), read-ahead goes on.
        let mut p = policy(64 * MIB);
        p.set_hinted(&[hint]);
        p.restart(state(9 * MIB, 64 * KIB, 40, 64 * KIB));
        let inside = drain(&mut p);
        assert!(
            inside.iter().map(|r| r.len).sum::<u64>() > 2 * MIB,
            "{inside:?}"
        );
    }

    #[test]
    fn hint_parts_fit_a_small_budget_and_a_plan_has_a_bounded_number_of_parts() {
        let limits = Limits {
            max_prefetch: 4 * MIB,
            max_part: MIB,
            window_behind: 0,
            ..Config::default().limits()
        };
        let p = Policy::new(limits, 1 << 40);
        let plan = p.plan_hints(std::slice::from_ref(&(0..64 * MIB)));
        // Each part fits where hinted parts may be, beside a demand block.
        assert!(p.hint_limit() > 0);
        assert!(plan.iter().all(|r| r.len <= p.hint_limit()), "{plan:?}");
        assert_eq!(plan.iter().map(|r| r.len).sum::<u64>(), 64 * MIB);
        // Tiny ranges far apart: one request each, up to the bound.
        let many: Vec<_> = (0..MAX_HINT_PARTS as u64 + 10)
            .map(|i| i * 8 * MIB..i * 8 * MIB + 1)
            .collect();
        assert_eq!(p.plan_hints(&many).len(), MAX_HINT_PARTS);
    }

    #[test]
    fn a_sequential_reader_gets_staggered_then_full_parts_from_the_start_and_a_normal_one_ramps() {
        let len = 1 << 30;
        let full = policy(len).part_cap();
        let first_parts = |advice| {
            let mut p = measured(len);
            p.restart(ReaderState {
                advice,
                ..state(0, 64 * KIB, 3, 64 * KIB)
            });
            let mut sizes = Vec::new();
            while let Some(request) = p.next_request(0, 0) {
                p.issued(request);
                sizes.push(request.len);
            }
            sizes
        };
        let sequential = first_parts(Advice::Sequential);
        // Staggered over the first wave, k/16 of a full part for the k-th,
        // then full.
        let staggered = (1..=16).map(|k| (full * k / 16).max(MIB));
        let expected: Vec<u64> = staggered
            .chain(std::iter::repeat(full))
            .take(sequential.len())
            .collect();
        // The last one takes what room is left of the window.
        let last = sequential.len() - 1;
        assert_eq!(sequential[..last], expected[..last]);
        assert!(sequential[last] <= full);
        assert!(sequential.len() > 16, "{sequential:?}");
        let normal = first_parts(Advice::Normal);
        assert!(normal.iter().all(|&len| len == MIB), "{normal:?}");
    }

    #[test]
    fn parts_near_the_end_share_what_is_left_to_transfer_so_connections_finish_together() {
        let len = 40 * MIB;
        let mut p = measured(len);
        p.restart(state(0, MIB, 3, MIB));
        p.ramp = 16 * MIB;
        let mut trace = Vec::new();
        while let Some(request) = p.next_request(0, 0) {
            p.issued(request);
            trace.push(request);
        }
        // Issued together, nothing arrived yet: 40 MiB in equal shares over
        // the 16 connections, not a large part first and slivers after.
        assert_eq!(trace.len(), 16, "{trace:?}");
        assert!(trace.iter().all(|r| r.len == len / 16), "{trace:?}");

        // Once what is in flight has arrived, what is left is shared anew.
        let mut p = measured(len);
        p.restart(state(0, MIB, 3, MIB));
        p.ramp = 16 * MIB;
        let first = p.next_request(0, 0).expect("a part");
        p.issued(first);
        p.set_unarrived(0);
        let next = p.next_request(0, 0).expect("a part");
        assert_eq!(next.len, (len - first.len).div_ceil(16));
        // While it is still on its way, it counts as left to transfer.
        p.set_unarrived(first.len);
        assert_eq!(p.next_request(0, 0).expect("a part").len, len / 16);
    }

    fn view(target: u64) -> SeekView {
        // Buffered 1..2 MiB, next block at 2 MiB, requested to 10 MiB,
        // the reader at 1.5 MiB.
        SeekView {
            started: true,
            target,
            from: 3 * MIB / 2,
            buffered_from: MIB,
            next_offset: 2 * MIB,
            requested_end: Some(10 * MIB),
        }
    }

    #[test]
    fn seeks_into_buffers_or_near_requests_in_flight_are_soft() {
        for target in [MIB, 3 * MIB / 2 - 1, 2 * MIB, 5 * MIB, 10 * MIB - 1] {
            assert_eq!(classify_seek(view(target)), SeekKind::Soft, "{target}");
        }
    }

    #[test]
    fn seeks_back_past_the_window_or_beyond_what_was_requested_are_hard() {
        for target in [0, MIB - 1, 10 * MIB, 40 * MIB] {
            assert_eq!(classify_seek(view(target)), SeekKind::Hard, "{target}");
        }
    }

    #[test]
    fn a_far_forward_seek_into_requests_in_flight_is_hard() {
        let far = SeekView {
            requested_end: Some(100 * MIB),
            ..view(0)
        };
        let limit = 2 * MIB + MAX_FORWARD_SEEK_WAIT_DISTANCE;
        assert_eq!(
            classify_seek(SeekView {
                target: limit,
                ..far
            }),
            SeekKind::Soft
        );
        assert_eq!(
            classify_seek(SeekView {
                target: limit + 1,
                ..far
            }),
            SeekKind::Hard
        );
    }

    #[test]
    fn what_another_epoch_requested_does_not_make_a_seek_soft() {
        let stale = SeekView {
            requested_end: None,
            ..view(5 * MIB)
        };
        assert_eq!(classify_seek(stale), SeekKind::Hard);
    }

    #[test]
    fn a_seek_before_the_first_request_is_neither() {
        let fresh = SeekView {
            started: false,
            ..view(40 * MIB)
        };
        assert_eq!(classify_seek(fresh), SeekKind::Unstarted);
    }

    #[test]
    fn every_read_is_reported_until_read_ahead_starts() {
        assert!(reports_every_read(1));
        assert!(reports_every_read(READAHEAD_AFTER_READS));
        assert!(!reports_every_read(READAHEAD_AFTER_READS + 1));
    }

    #[test]
    fn normal_read_ahead_splits_the_run_so_every_connection_is_busy() {
        let mut p = policy(1 << 40);
        let run = 34 * MIB;
        p.restart(ReaderState {
            pos: run,
            want: 64 * KIB,
            streak: 40,
            io_size: 64 * KIB,
            run,
            pace: u64::MAX,
            advice: Advice::Normal,
        });
        // Parts ramped up, on a link that asks for large ones.
        for _ in 0..8 {
            let part = Request {
                offset: 0,
                len: 8 * MIB,
                readahead: true,
            };
            p.completed(part, Duration::from_millis(20), Duration::from_millis(340));
        }
        let trace = drain(&mut p);
        let ahead: u64 = trace.iter().map(|r| r.len).sum();
        assert!(ahead <= run, "the window is at most the run: {ahead}");
        assert!(
            trace.len() >= 16,
            "one part per connection, not a few large ones: {trace:?}"
        );
        assert!(trace.iter().all(|r| r.len <= 2 * MIB), "{trace:?}");
    }
}
