//! A Session's read gate: the Session stops reading its peer (a chat rate over its budget,
//! or chats not yet shown piling up) without stopping its own turn. Pings still go out, the
//! Registry's orders are still handled; only the socket is left unread, so the peer fills its
//! own TCP window. The gate and the stream it guards belong to the same Session, on its
//! thread: plain atomics (a waker must be `Send`), never a lock. The guarded stream also
//! says when it has handed over everything ready (`Drained`), which is when the Session
//! hands its batch to the Registry, and it reads the socket only when the socket woke it
//! or still had frames, not at every turn of the Session.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use futures::Stream;

/// Why reading is paused; reading goes on when none holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The peer sends chats faster than its budget.
    Rate = 1,
    /// Chats handed on and not yet shown reached their bound (console flow control).
    Unshown = 2,
}

/// What the Session and its guarded stream share. Atomics only because a `Waker` must be
/// `Send` and `Sync`: both sides run on the Session's thread.
struct Shared {
    holds: AtomicU8,
    /// The guarded stream's source (the socket) woke it since the stream last had nothing.
    woken: AtomicBool,
    /// The Session's task: woken when the gate opens, and when the source wakes.
    task: AtomicWaker,
}

/// The waker the guarded stream gives its source: it notes that the source woke, then wakes
/// the Session's task.
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// An item a guarded stream can yield to say: every item ready so far has been handed over,
/// and the next poll waits (for the socket, or for the gate).
pub(crate) trait DrainMark {
    fn drained() -> Self;
}

/// The Session's handle on the gate.
#[derive(Clone)]
pub(crate) struct ReadGate(Arc<Shared>);

impl Default for ReadGate {
    fn default() -> Self {
        ReadGate(Arc::new(Shared {
            holds: AtomicU8::new(0),
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        }))
    }
}

impl ReadGate {
    pub(crate) fn hold(&self, why: Hold) {
        self.0.holds.fetch_or(why as u8, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, why: Hold) {
        let before = self.0.holds.fetch_and(!(why as u8), Ordering::Relaxed);
        if before != 0 && before & !(why as u8) == 0 {
            self.0.task.wake();
        }
    }

    pub(crate) fn is_held(&self, why: Hold) -> bool {
        self.0.holds.load(Ordering::Relaxed) & why as u8 != 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.holds.load(Ordering::Relaxed) != 0
    }

    /// `stream`, read only while the gate is open.
    pub(crate) fn guard<S>(&self, stream: S) -> Gated<S> {
        Gated {
            gate: self.clone(),
            inner: stream,
            gave_items: false,
            inner_ready: true,
            waker: Waker::from(self.0.clone()),
        }
    }
}

/// A stream behind a [`ReadGate`]. Where it would wait after giving items, it first yields
/// [`DrainMark::drained`] once: actix hands a stream's items over 16 per turn, so only the
/// stream knows when a burst read from the socket has been handed over whole.
///
/// actix polls every stream of an actor at each of its turns, also the turns a message
/// woke it for (a `Deliver`, an `AckChats`). The inner stream is polled only when it may
/// have something: it gave an item last time, or its source woke it since (it is given a
/// waker of its own, [`Shared`], which notes that). A turn for a message then reads no
/// socket state, which in a process serving many peers is cold at every chat
/// (docs/performance.md, fan-out, ninth round).
pub(crate) struct Gated<S> {
    gate: ReadGate,
    inner: S,
    /// Items were given since the last drain mark.
    gave_items: bool,
    /// The inner stream's last poll gave an item (or it was never polled): it may have more
    /// without waking.
    inner_ready: bool,
    /// The gate's own waker, handed to the inner stream.
    waker: Waker,
}

impl<S> Stream for Gated<S>
where
    S: Stream + Unpin,
    S::Item: DrainMark,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let shared = &this.gate.0;
        shared.task.register(cx.waker());
        let polled = if shared.holds.load(Ordering::Relaxed) != 0 {
            Poll::Pending
        } else if !this.inner_ready && !shared.woken.swap(false, Ordering::Acquire) {
            // Woken for something else: the source has had nothing since the last poll.
            Poll::Pending
        } else {
            // Cleared before the poll, so that a wake during it is kept.
            shared.woken.store(false, Ordering::Relaxed);
            let polled = Pin::new(&mut this.inner).poll_next(&mut Context::from_waker(&this.waker));
            this.inner_ready = matches!(polled, Poll::Ready(Some(_)));
            polled
        };
        match polled {
            Poll::Ready(Some(item)) => {
                this.gave_items = true;
                Poll::Ready(Some(item))
            }
            // The waker is registered: the next poll may wait.
            Poll::Pending if this.gave_items => {
                this.gave_items = false;
                Poll::Ready(Some(S::Item::drained()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// 0 stands for the drain mark in these tests.
    impl DrainMark for u32 {
        fn drained() -> u32 {
            0
        }
    }

    #[test]
    fn a_held_gate_reads_nothing_until_every_hold_is_released() {
        let gate = ReadGate::default();
        let mut gated = gate.guard(futures::stream::iter([1u32, 2, 3]));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        gate.hold(Hold::Rate);
        gate.hold(Hold::Unshown);
        // What was given before the hold is marked as handed over, once.
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(0)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        gate.release(Hold::Rate);
        assert!(gate.is_held(Hold::Unshown));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        gate.release(Hold::Unshown);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_burst_is_followed_by_one_drain_mark_before_the_stream_waits() {
        let gate = ReadGate::default();
        let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
        let mut gated = gate.guard(rx);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Nothing given yet: no mark, it waits.
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        for n in [7, 8, 9] {
            tx.unbounded_send(n).unwrap();
        }
        for n in [7, 8, 9] {
            assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(n)));
        }
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(0)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        tx.unbounded_send(10).unwrap();
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(10)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(0)));
        drop(tx);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(None));
    }

    /// A stream that counts its polls and holds nothing until a test gives it items.
    struct Probe {
        polls: std::rc::Rc<std::cell::Cell<u32>>,
        items: std::rc::Rc<std::cell::RefCell<Vec<u32>>>,
        waker: std::rc::Rc<std::cell::RefCell<Option<Waker>>>,
    }

    impl Stream for Probe {
        type Item = u32;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls.set(self.polls.get() + 1);
            match self.items.borrow_mut().pop() {
                Some(item) => Poll::Ready(Some(item)),
                None => {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    #[test]
    fn the_inner_stream_is_polled_again_only_once_its_source_woke_it() {
        let gate = ReadGate::default();
        let probe = Probe {
            polls: Default::default(),
            items: Default::default(),
            waker: Default::default(),
        };
        let (polls, items, source) = (
            probe.polls.clone(),
            probe.items.clone(),
            probe.waker.clone(),
        );
        let mut gated = gate.guard(probe);
        let task = futures::task::noop_waker();
        let mut cx = Context::from_waker(&task);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 1);
        // Turns of the actor for other reasons (its mailbox): the source is not looked at.
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 1);
        // Items come, the source wakes its waker: read until it has nothing again.
        items.borrow_mut().extend([5, 4]);
        source
            .borrow_mut()
            .take()
            .expect("a waker was given")
            .wake();
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(4)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(5)));
        // The poll that found it empty again, then the mark.
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(0)));
        assert_eq!(polls.get(), 4);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 4);
        // A wake while the gate is held is kept for when it opens.
        gate.hold(Hold::Unshown);
        items.borrow_mut().push(6);
        source
            .borrow_mut()
            .take()
            .expect("a waker was given")
            .wake();
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 4);
        gate.release(Hold::Unshown);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(6)));
    }

    #[test]
    fn opening_the_gate_wakes_the_sessions_task() {
        let gate = ReadGate::default();
        let mut gated = gate.guard(futures::stream::iter([1u32]));
        let (task, woken) = counting_waker();
        let mut cx = Context::from_waker(&task);
        gate.hold(Hold::Rate);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        gate.release(Hold::Rate);
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
    }

    /// A task waker that counts its wakes.
    fn counting_waker() -> (Waker, Arc<std::sync::atomic::AtomicU32>) {
        struct Count(Arc<std::sync::atomic::AtomicU32>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        (Waker::from(Arc::new(Count(count.clone()))), count)
    }
}
