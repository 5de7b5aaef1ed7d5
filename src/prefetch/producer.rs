//! The producer loop: one thread per reader that owns the scheduling state,
//! starts fetch jobs on the I/O pool, and sends their blocks to the reader in
//! ticket order.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use super::admission::Admission;
use super::block::{Block, Charge, HintedPart, Part, PartWriter};
use super::hints::HintPlan;
use super::io_pool::IoPool;
use super::part_buffer::PartBuffer;
use super::policy::{Policy, ReaderState, Request};
use crate::budget::Membership;
use crate::error::{Error, Result};
use crate::source::{FetchContext, RangeSource};
use crate::stats::Counters;

/// What wakes the producer: the reader's commands, fetch jobs ending, and
/// block memory being freed.
#[derive(Debug)]
pub(crate) enum Event {
    /// Start a new epoch at `reader.pos` (the first read, after a hard seek
    /// or after an error). Earlier epochs are abandoned: their cancel flag
    /// is already set.
    Restart {
        epoch: u64,
        reader: ReaderState,
        cancel: Arc<AtomicBool>,
    },
    /// The reader moved on, or needs more.
    Progress { epoch: u64, reader: ReaderState },
    /// The caller will read these ranges: plan their requests (replacing
    /// the hints of earlier calls), answer with the plan, and fetch it.
    WillNeed {
        generation: u64,
        ranges: Vec<Range<u64>>,
        plan: Sender<HintPlan>,
    },
    /// The reader waits for the hinted request at `offset` of call
    /// `generation`, not made yet: make it next.
    NeedHint { generation: u64, offset: u64 },
    /// The reader took a block: the channel has room.
    Taken,
    /// Fetch job `job` ended: of this epoch, or (`None`) of a hint.
    Done {
        job: u64,
        epoch: Option<u64>,
        request: Request,
        ttfb: Option<Duration>,
        total: Duration,
        ok: bool,
    },
    /// Block memory was freed.
    Freed,
    /// Stop: the reader is closing.
    Shutdown,
    /// Answer on this channel once nothing is in flight and nothing more
    /// is to be requested (test support).
    #[cfg(feature = "testing")]
    Quiet(Sender<()>),
}

/// The end of what has been requested in the current epoch, shared with
/// the reader so it can tell a soft seek from a hard one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Frontier {
    pub(crate) epoch: u64,
    pub(crate) end: u64,
}

/// The current epoch's number and cancel flag.
struct Epoch {
    number: u64,
    cancel: Arc<AtomicBool>,
}

pub(crate) struct Producer<S> {
    pub(crate) source: Arc<S>,
    pub(crate) pool: IoPool,
    pub(crate) counters: Arc<Counters>,
    pub(crate) events_tx: Sender<Event>,
    pub(crate) events: Receiver<Event>,
    pub(crate) blocks: Sender<Block>,
    /// Hinted parts, to the reader as they are issued.
    pub(crate) hinted: Sender<HintedPart>,
    pub(crate) frontier: Arc<Mutex<Frontier>>,
    /// Where arriving bytes are charged.
    pub(crate) admission: Arc<Admission>,
    /// The reader's place in a budget it shares with others, if any: its
    /// fetch jobs keep it until they end, so what they hold stays counted.
    pub(crate) membership: Option<Arc<Membership>>,
    pub(crate) policy: Policy,
}

/// The producer's running state.
struct Scheduler<S> {
    shared: Producer<S>,
    epoch: Option<Epoch>,
    in_flight: usize,
    /// The current epoch's jobs in flight, their requests and parts, to
    /// count the bytes still to arrive (the reader may have dropped the
    /// part: its job still charges what arrives).
    flying: Vec<(u64, Request, Arc<Part>)>,
    /// The current hints' jobs in flight and their parts, likewise.
    hints_flying: Vec<(u64, Arc<Part>)>,
    next_job: u64,
    /// Blocks issued but not yet in the channel (it was full). The producer
    /// never blocks on the reader: it must keep answering events.
    outbox: VecDeque<Block>,
    next_ticket: u64,
    /// The current hints' requests not yet made, their generation, and the
    /// cancel flag of every hinted request (set at close).
    hints: VecDeque<Request>,
    /// The current hints' requests not made yet, by offset: a request in
    /// `hints` that is not here was made already (moved ahead for a read
    /// that waited for it), and is skipped.
    unissued: HashMap<u64, Request>,
    hint_generation: u64,
    hint_cancel: Arc<AtomicBool>,
    /// The hinted request the reader waits for, at the front of `hints`:
    /// made alone if it is larger than the hints' room.
    needed: Option<u64>,
    /// Who waits for the producer to fall quiet.
    #[cfg(feature = "testing")]
    quiet_waiters: Vec<Sender<()>>,
}

impl<S: RangeSource> Producer<S> {
    /// Runs until the reader shuts it down or goes away.
    pub(crate) fn run(self) {
        let mut scheduler = Scheduler {
            shared: self,
            epoch: None,
            in_flight: 0,
            flying: Vec::new(),
            hints_flying: Vec::new(),
            next_job: 0,
            hints: VecDeque::new(),
            unissued: HashMap::new(),
            hint_generation: 0,
            hint_cancel: Arc::new(AtomicBool::new(false)),
            needed: None,
            outbox: VecDeque::new(),
            next_ticket: 0,
            #[cfg(feature = "testing")]
            quiet_waiters: Vec::new(),
        };
        scheduler.run();
    }
}

impl<S: RangeSource> Scheduler<S> {
    fn run(&mut self) {
        while let Ok(event) = self.shared.events.recv() {
            if !self.handle(event) {
                break;
            }
            // Take every event already waiting before deciding: one decision
            // per burst, on the freshest state.
            while let Ok(event) = self.shared.events.try_recv() {
                if !self.handle(event) {
                    return self.stop();
                }
            }
            self.schedule();
            if let Some(membership) = &self.shared.membership {
                membership.publish(self.reserved());
            }
            if !self.flush() {
                break;
            }
            #[cfg(feature = "testing")]
            if self.in_flight == 0 {
                for waiter in self.quiet_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
        self.stop();
    }

    /// Applies one event; `false` to stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Restart {
                epoch,
                reader,
                cancel,
            } => {
                self.abandon_outbox();
                self.flying.clear();
                self.epoch = Some(Epoch {
                    number: epoch,
                    cancel,
                });
                self.shared.policy.restart(reader);
                self.publish_frontier();
            }
            Event::Progress { epoch, reader } => {
                if self.is_current(epoch) {
                    self.shared.policy.progress(reader);
                }
            }
            Event::Done {
                job,
                epoch,
                request,
                ttfb,
                total,
                ok,
            } => {
                self.in_flight -= 1;
                let current = epoch.is_some_and(|epoch| self.is_current(epoch));
                self.flying.retain(|(flying, _, _)| *flying != job);
                self.hints_flying.retain(|(flying, _)| *flying != job);
                // Hinted parts teach the link estimate too.
                if let (true, true, Some(ttfb)) = (ok, current || epoch.is_none(), ttfb) {
                    self.shared.policy.completed(request, ttfb, total);
                }
            }
            Event::WillNeed {
                generation,
                ranges,
                plan,
            } => {
                // Hints of earlier calls not requested yet are dropped.
                // Those in flight finish, still counted: the reader may be
                // reading one of them (the parts it holds stay its own),
                // and cutting it short would fail that read.
                self.hint_generation = generation;
                // One stream read front to back cannot serve ranges ahead.
                let requests = if self.shared.source.supports_ranges() {
                    self.shared.policy.plan_hints(&ranges)
                } else {
                    Vec::new()
                };
                self.hints = requests.iter().copied().collect();
                self.unissued = requests.iter().map(|r| (r.offset, *r)).collect();
                self.shared.policy.set_hinted(&requests);
                self.needed = None;
                let _ = plan.send(HintPlan {
                    requests,
                    room: self.shared.policy.hint_limit(),
                });
            }
            Event::NeedHint { generation, offset } => {
                let request = self.unissued.get(&offset).copied();
                if let (true, Some(request)) = (generation == self.hint_generation, request) {
                    // Its place further on is skipped once it is made.
                    self.hints.push_front(request);
                    self.needed = Some(offset);
                }
            }
            Event::Taken | Event::Freed => {}
            Event::Shutdown => return false,
            #[cfg(feature = "testing")]
            Event::Quiet(waiter) => self.quiet_waiters.push(waiter),
        }
        true
    }

    fn is_current(&self, epoch: u64) -> bool {
        self.epoch.as_ref().is_some_and(|e| e.number == epoch)
    }

    fn stop(&mut self) {
        if let Some(epoch) = &self.epoch {
            epoch.cancel.store(true, Relaxed);
        }
        self.hint_cancel.store(true, Relaxed);
        self.abandon_outbox();
    }

    /// The bytes blocks may be taking: those charged, and those still to
    /// arrive of every request in flight whose commits would be taken.
    fn reserved(&self) -> u64 {
        self.shared.admission.counting(|| {
            let flying = self.flying.iter().map(|(_, _, part)| part);
            let hinted = self.hints_flying.iter().map(|(_, part)| part);
            let unarrived: u64 = flying.chain(hinted).map(|part| part.unarrived()).sum();
            self.shared.counters.allocated_for_blocks() + unarrived
        })
    }

    /// Drops blocks of an abandoned epoch that never reached the reader
    /// (the bytes of any that arrived count as wasted as they are freed).
    fn abandon_outbox(&mut self) {
        self.outbox.clear();
    }

    fn publish_frontier(&self) {
        if let Some(epoch) = &self.epoch {
            *self.shared.frontier.lock() = Frontier {
                epoch: epoch.number,
                end: self.shared.policy.frontier(),
            };
        }
    }

    /// Starts every request the policy allows now: hinted ones first
    /// (the caller said it needs them), then the epoch's; but a demand the
    /// reader waits for goes first.
    fn schedule(&mut self) {
        let demand_first = self.epoch.is_some() && self.shared.policy.demand_waiting();
        if !demand_first {
            self.schedule_hints();
        }
        self.schedule_epoch();
        if demand_first {
            self.schedule_hints();
        }
    }

    /// Starts the epoch's requests the policy allows now.
    fn schedule_epoch(&mut self) {
        let Some(epoch) = &self.epoch else { return };
        if epoch.cancel.load(Relaxed) {
            // A hard seek or close abandoned this epoch; the reader's
            // restart (if any) is on its way.
            self.abandon_outbox();
            return;
        }
        let (number, cancel) = (epoch.number, epoch.cancel.clone());
        let unarrived = self
            .flying
            .iter()
            .map(|(_, _, part)| part.unarrived())
            .sum();
        self.shared.policy.set_unarrived(unarrived);
        loop {
            let reserved = self.reserved();
            let Some(request) = self.shared.policy.next_request(self.in_flight, reserved) else {
                break;
            };
            if !self.shared_room_for(reserved + request.len) {
                break;
            }
            self.shared.policy.issued(request);
            self.in_flight += 1;
            let block = self.spawn(number, &cancel, request);
            self.outbox.push_back(block);
        }
        self.publish_frontier();
    }

    /// Starts the hinted requests that fit now: within the concurrency
    /// and the memory limit, in the order planned (the one the reader
    /// waits for first). The plan may be larger than the budget: the rest
    /// waits for room, made as the reader reads hinted parts through.
    fn schedule_hints(&mut self) {
        while let Some(&request) = self.hints.front() {
            if !self.unissued.contains_key(&request.offset) {
                self.hints.pop_front();
                continue;
            }
            if self.in_flight >= self.shared.policy.concurrency() {
                return;
            }
            // Room for one demand block stays free whatever the hints hold;
            // the reader keeps the parts it holds within the hints' room
            // beside the one it waits for. Alone, that one goes whatever
            // its size and whatever readers sharing a budget hold.
            let reserved = self.reserved();
            let needed = self.needed == Some(request.offset);
            let alone = needed && reserved == 0;
            // Asked last: a shared budget counts a request that fits at once.
            let fits = reserved.saturating_add(request.len) <= self.shared.policy.hint_limit()
                && self.shared_room_for(reserved + request.len);
            if !(fits || alone) {
                return;
            }
            if needed {
                self.needed = None;
            }
            self.hints.pop_front();
            self.unissued.remove(&request.offset);
            self.in_flight += 1;
            let cancel = self.hint_cancel.clone();
            let (job, part) = self.start_job(None, &cancel, request);
            self.hints_flying.push((job, part.clone()));
            let hinted = HintedPart {
                generation: self.hint_generation,
                offset: request.offset,
                part,
            };
            // The reader may be gone; then the part is freed here.
            let _ = self.shared.hinted.send(hinted);
        }
    }

    /// Whether a budget shared with other readers, if any, has room for
    /// this reader to reserve `reserved` bytes: beside the others, or
    /// within its floor.
    fn shared_room_for(&self, reserved: u64) -> bool {
        self.shared
            .membership
            .as_ref()
            .is_none_or(|membership| membership.fits(reserved, self.shared.policy.shared_floor()))
    }

    /// Starts the fetch job for `request` and returns its block.
    fn spawn(&mut self, epoch: u64, cancel: &Arc<AtomicBool>, request: Request) -> Block {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let (job, part) = self.start_job(Some(epoch), cancel, request);
        self.flying.push((job, request, part.clone()));
        Block {
            epoch,
            ticket,
            offset: request.offset,
            len: request.len,
            part,
        }
    }

    /// Starts the fetch job for `request` (of `epoch`, or a hint) and
    /// returns its number and the part it fills.
    fn start_job(
        &mut self,
        epoch: Option<u64>,
        cancel: &Arc<AtomicBool>,
        request: Request,
    ) -> (u64, Arc<Part>) {
        let job = self.next_job;
        self.next_job += 1;
        let counters = self.shared.counters.clone();
        let events = Some(self.shared.events_tx.clone());
        let (part, writer) = Part::new(
            part_buffer(request.len),
            Charge::empty(counters.clone(), events),
            self.shared.admission.clone(),
            cancel.clone(),
            counters.clone(),
        );
        let source = self.shared.source.clone();
        let events = self.shared.events_tx.clone();
        let cancel = cancel.clone();
        let membership = self.shared.membership.clone();
        Counters::add(&counters.requests_in_flight, 1);
        self.shared.pool.spawn(move || {
            // Timed from here, not from the spawn: time queued in the pool
            // says nothing about the link.
            let ctx = FetchContext::attached(cancel, counters.clone());
            let ok = panic::catch_unwind(AssertUnwindSafe(|| {
                fetch(&*source, request, writer, &ctx, &counters)
            }))
            .unwrap_or(false);
            // Out of the budget before the job counts as ended.
            drop(membership);
            counters.requests_in_flight.fetch_sub(1, Relaxed);
            let done = Event::Done {
                job,
                epoch,
                request,
                ttfb: ctx.time_to_first_byte(),
                total: ctx.elapsed(),
                ok,
            };
            let _ = events.send(done);
        });
        (job, part)
    }

    /// Moves blocks from the outbox into the channel while it has room;
    /// `false` once the reader is gone.
    fn flush(&mut self) -> bool {
        while let Some(block) = self.outbox.pop_front() {
            match self.shared.blocks.try_send(block) {
                Ok(()) => {}
                Err(TrySendError::Full(block)) => {
                    self.outbox.push_front(block);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }
}

/// A new buffer for a part of `len` bytes.
fn part_buffer(len: u64) -> Result<PartBuffer> {
    let len = usize::try_from(len).map_err(|_| Error::InvalidConfig {
        setting: "max_part_size",
        reason: format!("{len} bytes do not fit in memory here"),
    })?;
    PartBuffer::new(len)
        .map_err(|err| Error::io(format!("cannot allocate a {len}-byte block"), err))
}

/// One fetch job's work: have the source stream the part into its buffer
/// (unless the work is already abandoned), counting the request as sent;
/// whether it succeeded. Bytes received beyond those committed (a retry's
/// repeats, bytes skipped) are wasted; a source that committed bytes
/// without reporting them received them.
fn fetch<S: RangeSource>(
    source: &S,
    request: Request,
    writer: PartWriter,
    ctx: &FetchContext,
    counters: &Counters,
) -> bool {
    let location = || {
        // A source that panicked once may panic again.
        panic::catch_unwind(AssertUnwindSafe(|| source.location()))
            .unwrap_or_else(|_| "the object".to_owned())
    };
    let (ok, committed) = writer.fill(
        |sink| {
            ctx.check_cancelled()?;
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                // A source reading one stream counts the requests it sends.
                if source.supports_ranges() {
                    Counters::add(&counters.requests, 1);
                }
                source.read_streaming(request.offset, sink, ctx)
            }))
            .unwrap_or_else(|_| {
                // A panic escaping a pool thread would abort the process.
                Err(Error::Terminated(format!(
                    "the source panicked reading {} bytes at offset {} of {}",
                    request.len,
                    request.offset,
                    location()
                )))
            });
            result
        },
        |filled| Error::Truncated {
            object: location(),
            offset: request.offset,
            expected: request.len,
            received: filled as u64,
        },
    );
    let committed = committed as u64;
    // Bytes served from what the open received were counted at open.
    let received = ctx.bytes_received() + ctx.bytes_from_open();
    if received < committed {
        Counters::add(&counters.bytes_fetched, committed - received);
    } else {
        Counters::add(&counters.bytes_wasted, received - committed);
    }
    ok
}
