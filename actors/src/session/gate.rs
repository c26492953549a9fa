//! A Session's read gate: the Session stops reading its peer (a chat rate over its budget,
//! or chats not yet shown piling up) without stopping its own turn. Pings still go out, the
//! Registry's orders are still handled; only the socket is left unread, so the peer fills its
//! own TCP window. The gate and the stream it guards belong to the same Session, on its
//! thread: a `Cell`, not a lock. The guarded stream also says when it has handed over
//! everything ready (`Drained`), which is when the Session hands its batch to the Registry.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::Stream;

/// Why reading is paused; reading goes on when none holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The peer sends chats faster than its budget.
    Rate = 1,
    /// Chats handed on and not yet shown reached their bound (console flow control).
    Unshown = 2,
}

#[derive(Default)]
struct Shared {
    holds: Cell<u8>,
    waker: RefCell<Option<Waker>>,
}

/// An item a guarded stream can yield to say: every item ready so far has been handed over,
/// and the next poll waits (for the socket, or for the gate).
pub(crate) trait DrainMark {
    fn drained() -> Self;
}

/// The Session's handle on the gate.
#[derive(Clone, Default)]
pub(crate) struct ReadGate(Rc<Shared>);

impl ReadGate {
    pub(crate) fn hold(&self, why: Hold) {
        self.0.holds.set(self.0.holds.get() | why as u8);
    }

    pub(crate) fn release(&self, why: Hold) {
        let holds = self.0.holds.get() & !(why as u8);
        self.0.holds.set(holds);
        if holds == 0 {
            if let Some(waker) = self.0.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    pub(crate) fn is_held(&self, why: Hold) -> bool {
        self.0.holds.get() & why as u8 != 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.holds.get() != 0
    }

    /// `stream`, read only while the gate is open.
    pub(crate) fn guard<S>(&self, stream: S) -> Gated<S> {
        Gated {
            gate: self.clone(),
            inner: stream,
            gave_items: false,
        }
    }
}

/// A stream behind a [`ReadGate`]. Where it would wait after giving items, it first yields
/// [`DrainMark::drained`] once: actix hands a stream's items over 16 per turn, so only the
/// stream knows when a burst read from the socket has been handed over whole.
pub(crate) struct Gated<S> {
    gate: ReadGate,
    inner: S,
    /// Items were given since the last drain mark.
    gave_items: bool,
}

impl<S> Stream for Gated<S>
where
    S: Stream + Unpin,
    S::Item: DrainMark,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let polled = if self.gate.is_closed() {
            *self.gate.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Pin::new(&mut self.inner).poll_next(cx)
        };
        match polled {
            Poll::Ready(Some(item)) => {
                self.gave_items = true;
                Poll::Ready(Some(item))
            }
            // The waker is registered: the next poll may wait.
            Poll::Pending if self.gave_items => {
                self.gave_items = false;
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
}
