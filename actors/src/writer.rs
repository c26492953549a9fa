//! The sending half of a Session's socket: a queue of encoded frames, bounded in bytes, and a
//! task that writes them, several frames per system call when they pile up. Once the Session's
//! Noise handshake is done it hands the writer its [`Sealer`] ([`FrameWriter::start_sealing`]):
//! from then on the task seals what it takes, once per write, packing the maps of every frame
//! queued since the last write into as few transport messages as fit. Encryption is paid per
//! batch, not per chat.
//!
//! Frames are encoded straight into one buffer shared with the writing task, which takes
//! everything queued at once and writes it: no allocation or copy per frame. The task runs
//! after the actor that queued the frames has finished its turn, so the frames of one turn
//! (a `Deliver` or an `AckChats` carries many) leave in one write. One exception: a
//! Session's `AckChats` writes its acks itself ([`FrameWriter::send_held`]) when the task is
//! not mid-write and nothing unsealed is queued, sealing everything queued so far so the
//! frames keep their order; that saves a wake-up of the task per ack batch, and whatever the
//! socket does not take goes to the task, first in line. It does not wait for more:
//! holding frames back to fill bigger writes made the two ends of a stream take turns
//! instead of working at once (docs/performance.md).
//!
//! Why not `actix::io::FramedWrite`: it buffers without bound and cannot say how full it is;
//! a peer that stops reading must cost us a bounded amount of memory.
//!
//! The socket's sending half lives in the state the handle and the task share, not in the
//! task: every socket call used here takes `&self`, so `reset` can shut the socket down while
//! the task is in the middle of a write, without `unsafe` and without a second descriptor per
//! connection (10,000 idle sessions must fit in the descriptor limit).

use std::future::poll_fn;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::thread::LocalKey;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;
use socket2::SockRef;
use tokio::net::tcp::OwnedWriteHalf;

use crate::limits::WriteBudget;
use crate::noise::Sealer;
use crate::spare::{self, Spare};
use crate::wire::{encode_frame_into, Frame, WireError};

/// Most bytes given to one write (and to one stall timeout).
const BATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// A queue's buffer let go of by `write_held` once all of it was sealed, emptied: the
    /// next queue on this thread to need room takes it instead of allocating.
    static SPARE_PENDING: Spare<BytesMut> = const { Spare::new() };
    /// `write_held`'s buffer of sealed bytes, kept between calls.
    static SPARE_SEALED: Spare<BytesMut> = const { Spare::new() };
}

/// The largest buffers kept as the thread's spares: one grown for a burst is let go of.
const SPARE_PENDING_MAX: usize = 4 * 1024;
const SPARE_SEALED_MAX: usize = BATCH_BYTES;

/// Keeps `buffer`, emptied, as the thread's spare in `slot`, unless the allocation behind
/// it is bigger than `max`.
fn keep_spare(slot: &'static LocalKey<Spare<BytesMut>>, buffer: BytesMut, max: usize) {
    spare::keep(slot, buffer, |buffer| {
        buffer.clear();
        // `capacity` is only this view's: a view left after the task's `split` of a big
        // batch would keep the whole allocation behind it. Reclaiming more than `max`
        // without allocating succeeds exactly when that allocation is bigger than `max`.
        buffer.capacity() > 0 && !buffer.try_reclaim(max + 1)
    });
}

/// Why a frame was not queued.
#[derive(Debug)]
pub enum WriteRefused {
    /// The queue is full: the peer reads slower than we write.
    QueueFull,
    /// The queues of all peers together are over the node's budget, and this one is among
    /// the biggest ([`WriteBudget::over_for`]).
    BudgetFull,
    /// The connection is closing or its writer failed.
    Closed,
    /// The frame cannot be encoded (too large).
    Encode(WireError),
}

/// What the Session's handle and the writing task share.
#[derive(Default)]
struct Queue {
    /// Frames encoded and not yet taken by the writing task.
    pending: BytesMut,
    /// Once sealing: the ranges of `pending` that go out as they are (the last handshake
    /// message, injected garbage); everything else is frames to seal.
    unsealed: Vec<std::ops::Range<usize>>,
    /// Frames are sealed from now on.
    sealing: bool,
    /// The sealer, once the handshake is done: the writing task (and `write_held`) seals
    /// with it under the lock (the Session and the task share one thread, so nobody waits
    /// for it), and the task's future stays small.
    sealer: Option<Sealer>,
    /// Bytes taken by the writing task and not yet written.
    writing: usize,
    /// No more frames: the handle closed, or the writing task ended.
    closed: bool,
    /// The node's budget for all queues, and the bytes of this queue counted in it.
    budget: Option<Arc<WriteBudget>>,
    counted: usize,
}

impl Queue {
    fn queued(&self) -> usize {
        self.pending.len() + self.writing
    }

    /// Brings the node's budget up to date with this queue; called after every change.
    fn account(&mut self) {
        let now = self.queued();
        if let Some(budget) = &self.budget {
            budget.moved(self.counted, now);
        }
        self.counted = now;
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.moved(self.counted, 0);
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Written by the task, and by `write_held` when the task is idle (they share a thread);
    /// shut down by `reset` too, hence here and not in the task.
    socket: OwnedWriteHalf,
    /// The writing task, woken when frames arrive or the queue closes.
    task: AtomicWaker,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves plain bytes and counters: still usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shutdown(&self, how: Shutdown) {
        // Fails only if the socket is already shut or gone: either way, it is cut.
        let _ = SockRef::from(self.socket.as_ref()).shutdown(how);
    }
}

/// Handle the Session keeps; dropping it (or `close`) lets the writer finish what is queued
/// and then shut the socket's sending side.
pub struct FrameWriter {
    shared: Arc<Shared>,
    max_queued: usize,
}

impl FrameWriter {
    /// Starts the writing task on the current thread. At most `max_queued` bytes wait; a
    /// write that makes no progress for `stall` ends the task (the peer is gone or stopped
    /// reading).
    pub fn spawn(half: OwnedWriteHalf, max_queued: usize, stall: Duration) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            socket: half,
            task: AtomicWaker::new(),
        });
        actix_rt::spawn(pump(shared.clone(), stall));
        FrameWriter {
            shared,
            max_queued: max_queued.max(1),
        }
    }

    /// Counts this writer's bytes in the node's `budget` of all writers together.
    pub fn with_budget(self, budget: Arc<WriteBudget>) -> Self {
        let mut queue = self.shared.lock();
        queue.budget = Some(budget);
        queue.account();
        drop(queue);
        self
    }

    /// Whether the node's budget is over and this queue is among the biggest: it should let
    /// go ([`WriteBudget::over_for`]).
    pub fn over_budget(&self) -> bool {
        let queue = self.shared.lock();
        let queued = queue.queued();
        queue
            .budget
            .as_ref()
            .is_some_and(|budget| budget.over_for(queued))
    }

    /// Queues a frame, unless the queue already holds `max_queued` bytes, or the node's
    /// budget is over and this queue is among the biggest.
    pub fn send(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        self.queue_frame(frame)?;
        self.shared.task.wake();
        Ok(())
    }

    /// Like `send`, without waking the writing task: the caller ends with
    /// [`FrameWriter::write_held`], which writes what it queued itself when it can.
    pub fn send_held(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        self.queue_frame(frame)
    }

    /// Writes what is queued now, from the caller, when nothing is in its way: the writing
    /// task is not in the middle of a write and the socket takes all of it. That spares the
    /// task a wake-up and a poll (an ack sent on its own: docs/performance.md, fan-out).
    /// Whatever the socket does not take, or any failure, is left to the task, in order.
    pub fn write_held(&mut self) {
        let mut guard = self.shared.lock();
        let queue = &mut *guard;
        if queue.pending.is_empty() && !queue.closed {
            return;
        }
        // A write under way, the end, raw bytes among the frames, or no sealer yet: the
        // task's, which handles them all.
        let Some(sealer) = queue.sealer.as_mut() else {
            drop(guard);
            return self.shared.task.wake();
        };
        if queue.writing > 0 || queue.closed || !queue.unsealed.is_empty() {
            drop(guard);
            return self.shared.task.wake();
        }
        let mut sealed = spare::take(&SPARE_SEALED).unwrap_or_default();
        if let Err(err) = sealer.seal_frames(&queue.pending, &mut sealed) {
            // As `take_batch`: nonces used up, or a bug. Cut it.
            tracing::warn!("cannot seal frames: {err}");
            queue.closed = true;
            queue.pending = BytesMut::new();
            queue.account();
            drop(guard);
            return self.shared.task.wake();
        }
        // Everything queued is sealed: the queue holds no buffer, the thread keeps it.
        keep_spare(
            &SPARE_PENDING,
            std::mem::take(&mut queue.pending),
            SPARE_PENDING_MAX,
        );
        queue.writing = sealed.len();
        queue.account();
        drop(guard);
        let written = write_now(&self.shared.socket, &sealed);
        let mut queue = self.shared.lock();
        queue.writing = 0;
        match written {
            Ok(at) if at == sealed.len() => queue.account(),
            Ok(at) => {
                // The rest is already sealed: it goes first, as it is, and the task waits
                // for room. (Nothing can have been queued meanwhile: this call has not
                // returned, and the handle and the task share one thread.)
                let mut rest = BytesMut::from(&sealed[at..]);
                let len = rest.len();
                let queued_since = queue.pending.split();
                rest.extend_from_slice(&queued_since);
                let moved: Vec<_> = queue
                    .unsealed
                    .drain(..)
                    .map(|range| range.start + len..range.end + len)
                    .collect();
                queue.unsealed.push(0..len);
                queue.unsealed.extend(moved);
                queue.pending = rest;
                queue.account();
                drop(queue);
                self.shared.task.wake();
            }
            Err(_) => {
                // As the task does on a failed write: nothing more goes out.
                queue.closed = true;
                queue.pending = BytesMut::new();
                queue.unsealed.clear();
                queue.account();
                drop(queue);
                self.shared.task.wake();
            }
        }
        keep_spare(&SPARE_SEALED, sealed, SPARE_SEALED_MAX);
    }

    fn queue_frame(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        let mut queue = self.shared.lock();
        if queue.pending.capacity() == 0 {
            if let Some(spare) = spare::take(&SPARE_PENDING) {
                queue.pending = spare;
            }
        }
        let before = queue.pending.len();
        encode_frame_into(frame, &mut queue.pending).map_err(WriteRefused::Encode)?;
        let queued = queue.queued();
        if queued > self.max_queued {
            queue.pending.truncate(before);
            return Err(WriteRefused::QueueFull);
        }
        if queue.closed {
            queue.pending.truncate(before);
            return Err(WriteRefused::Closed);
        }
        queue.account();
        if queue
            .budget
            .as_ref()
            .is_some_and(|budget| budget.over_for(queued))
        {
            queue.pending.truncate(before);
            queue.account();
            return Err(WriteRefused::BudgetFull);
        }
        Ok(())
    }

    /// Queues a frame whatever the queue holds: the last `bye`, which tells the peer why.
    pub fn send_past_limit(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(WriteRefused::Closed);
        }
        encode_frame_into(frame, &mut queue.pending).map_err(WriteRefused::Encode)?;
        queue.account();
        drop(queue);
        self.shared.task.wake();
        Ok(())
    }

    /// Queues bytes to go out as they are, never sealed, whatever the queue holds: a
    /// handshake message, or injected garbage.
    pub fn send_bytes(&mut self, bytes: Bytes) -> Result<(), WriteRefused> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(WriteRefused::Closed);
        }
        let start = queue.pending.len();
        queue.pending.extend_from_slice(&bytes);
        if queue.sealing {
            let end = queue.pending.len();
            queue.unsealed.push(start..end);
        }
        queue.account();
        drop(queue);
        self.shared.task.wake();
        Ok(())
    }

    /// The handshake is done: what is queued now goes out as it is (the last handshake
    /// message), every frame queued from now on is sealed by `sealer`. Once only.
    pub fn start_sealing(&mut self, sealer: Sealer) {
        let mut queue = self.shared.lock();
        if queue.sealing {
            return;
        }
        queue.sealing = true;
        let queued = queue.pending.len();
        if queued > 0 {
            queue.unsealed.push(0..queued);
        }
        queue.sealer = Some(sealer);
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().queued()
    }

    /// No more frames; what is queued is still written.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.task.wake();
    }

    /// Cuts the connection now, both ways: what is queued is dropped, no `bye`; the peer
    /// sees the connection end, and reads on our side end too. (For the injected `Reset`
    /// fault, without keeping a second descriptor per connection.)
    pub fn reset(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        queue.pending = BytesMut::new();
        queue.unsealed.clear();
        queue.account();
        drop(queue);
        // A write the task has under way fails at once, and the task ends.
        self.shared.shutdown(Shutdown::Both);
        self.shared.task.wake();
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writing task. Its future is small on purpose: a future is as large as its largest
/// state, and every connection pays for its writing task, idle or not (thousands of sessions:
/// docs/performance.md). So the sealer stays in the shared queue, a batch is sealed and
/// written without waiting while the socket takes it (the usual case), and only a socket
/// that refuses bytes makes the task wait, in a boxed future that holds the rest.
async fn pump(shared: Arc<Shared>, stall: Duration) {
    let _end = Ending(shared.clone());
    loop {
        // Wait for frames, or for the end.
        poll_fn(|cx| {
            shared.task.register(cx.waker());
            let queue = shared.lock();
            if queue.pending.is_empty() && !queue.closed {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let batch = match take_batch(&shared) {
            Batch::Ready(batch) => batch,
            // Closed, and everything written: `_end` shuts the sending side, so the peer
            // reads all of it and then the end of the stream.
            Batch::Done => break,
            Batch::Failed => return,
        };
        let written = match write_now(&shared.socket, &batch) {
            Ok(at) if at == batch.len() => true,
            Ok(at) => Box::pin(write_rest(&shared.socket, batch, at, stall))
                .await
                .is_ok(),
            Err(_) => false,
        };
        let mut queue = shared.lock();
        queue.writing = 0;
        if !written {
            queue.closed = true;
            queue.pending = BytesMut::new();
            queue.account();
            return;
        }
        if queue.pending.is_empty() {
            // Also lets go of the allocation the batch was split from: a quiet connection
            // holds no buffer at all.
            queue.pending = BytesMut::new();
        }
        queue.account();
    }
}

/// What `take_batch` found in the queue.
enum Batch {
    /// The bytes to write, sealed if the handshake is done.
    Ready(BytesMut),
    /// Nothing queued, and the queue is closed.
    Done,
    /// Sealing failed: the queue is closed and emptied.
    Failed,
}

/// Takes everything queued, sealed (by the queue's sealer, once the handshake is done).
fn take_batch(shared: &Shared) -> Batch {
    let mut guard = shared.lock();
    let queue = &mut *guard;
    if queue.pending.is_empty() {
        return Batch::Done;
    }
    let batch = queue.pending.split();
    queue.writing = batch.len();
    let unsealed = std::mem::take(&mut queue.unsealed);
    let Some(sealer) = queue.sealer.as_mut() else {
        return Batch::Ready(batch);
    };
    match seal(sealer, &batch, &unsealed) {
        Ok(sealed) => Batch::Ready(sealed),
        Err(err) => {
            // Nonces used up, or a bug: a gap or garbage would follow. Cut it.
            tracing::warn!("cannot seal frames: {err}");
            queue.writing = 0;
            queue.closed = true;
            queue.pending = BytesMut::new();
            queue.account();
            Batch::Failed
        }
    }
}

/// Writes as much of `batch` as the socket takes without waiting, `BATCH_BYTES` per call;
/// how far it got.
fn write_now(socket: &OwnedWriteHalf, batch: &[u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < batch.len() {
        let end = stretch_end(batch, at);
        match socket.try_write(&batch[at..end]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(at),
            Err(err) => return Err(err),
        }
    }
    Ok(at)
}

/// Where the stretch of `BATCH_BYTES` that `at` is in ends: the stretches are cut from the
/// batch's start, whatever a partial write left.
fn stretch_end(batch: &[u8], at: usize) -> usize {
    batch.len().min((at / BATCH_BYTES + 1) * BATCH_BYTES)
}

/// The rest of `batch` from `at`, once the socket refused bytes: each stretch of
/// `BATCH_BYTES` (as `write_now` cut them) must make progress within `stall`.
async fn write_rest(
    socket: &OwnedWriteHalf,
    batch: BytesMut,
    at: usize,
    stall: Duration,
) -> std::io::Result<()> {
    // The rest of the stretch the socket refused, waiting for room at once.
    let end = stretch_end(&batch, at);
    write_when_writable(socket, &batch[at..end], stall).await?;
    for chunk in batch[end..].chunks(BATCH_BYTES) {
        write_chunk(socket, chunk, stall).await?;
    }
    Ok(())
}

/// What goes on the wire for `batch`: its frames sealed, the `unsealed` ranges as they are,
/// in order.
fn seal(
    sealer: &mut Sealer,
    batch: &[u8],
    unsealed: &[std::ops::Range<usize>],
) -> Result<BytesMut, crate::noise::NoiseError> {
    let mut out = BytesMut::with_capacity(batch.len() + batch.len() / 64 + 64);
    let mut at = 0;
    for range in unsealed {
        if range.start > at {
            sealer.seal_frames(&batch[at..range.start], &mut out)?;
        }
        out.extend_from_slice(&batch[range.clone()]);
        at = range.end;
    }
    if at < batch.len() {
        sealer.seal_frames(&batch[at..], &mut out)?;
    }
    Ok(out)
}

/// Writes all of `chunk`, failing if the socket accepts nothing for `stall`. The socket is
/// tried first without a timer: it usually takes everything at once, and arming a timer for
/// every write cost more than the write's own bookkeeping when frames go out one by one.
/// (Only `write_rest`, itself boxed, calls it.)
async fn write_chunk(
    socket: &OwnedWriteHalf,
    mut chunk: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    while !chunk.is_empty() {
        match socket.try_write(chunk) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => chunk = &chunk[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                return write_when_writable(socket, chunk, stall).await;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The rest of `write_chunk` once the socket refused bytes: waits for room, at most `stall`
/// since the last progress.
async fn write_when_writable(
    socket: &OwnedWriteHalf,
    mut chunk: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    // Since the last progress: the socket has just refused bytes.
    let mut deadline = Some(tokio::time::Instant::now() + stall);
    while !chunk.is_empty() {
        match socket.try_write(chunk) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                chunk = &chunk[n..];
                deadline = None;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + stall);
                match tokio::time::timeout_at(until, socket.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// However the writing task ends (all written after `close`, a failed or stalled write, or
/// dropped with its runtime), nothing more is queued and the peer sees our sending side end.
/// The socket is closed only once the handle is gone too (a Session lingers after its bye to
/// read acks), so the end of the stream cannot wait for that.
struct Ending(Arc<Shared>);

impl Drop for Ending {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.closed = true;
        queue.pending = BytesMut::new();
        queue.writing = 0;
        queue.account();
        drop(queue);
        self.0.shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests;
