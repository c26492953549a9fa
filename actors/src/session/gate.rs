//! A Session's read gate: the Session stops reading its peer (a chat rate over its budget,
//! or chats not yet shown piling up) without stopping its own turn. Pings still go out, the
//! Registry's orders are still handled; only the socket is left unread, so the peer fills its
//! own TCP window. The gate and the stream it guards belong to the same Session, on its
//! thread: a `Cell`, not a lock.

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
    /// The stream's last poll gave an item: more may be ready without waiting.
    gave_item: Cell<bool>,
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

    /// Whether the guarded stream's last poll gave an item, rather than finding nothing
    /// ready (or the gate closed): then it stopped only because its reader yielded (actix
    /// reads 16 items of a stream per turn), and more items are probably ready now.
    pub(crate) fn more_ready(&self) -> bool {
        self.0.gave_item.get()
    }

    /// `stream`, read only while the gate is open.
    pub(crate) fn guard<S>(&self, stream: S) -> Gated<S> {
        Gated {
            gate: self.clone(),
            inner: stream,
        }
    }
}

/// A stream behind a [`ReadGate`].
pub(crate) struct Gated<S> {
    gate: ReadGate,
    inner: S,
}

impl<S: Stream + Unpin> Stream for Gated<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.gate.is_closed() {
            *self.gate.0.waker.borrow_mut() = Some(cx.waker().clone());
            self.gate.0.gave_item.set(false);
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        self.gate
            .0
            .gave_item
            .set(matches!(polled, Poll::Ready(Some(_))));
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn a_held_gate_reads_nothing_until_every_hold_is_released() {
        let gate = ReadGate::default();
        let mut gated = gate.guard(futures::stream::iter([1, 2, 3]));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        assert!(gate.more_ready());
        gate.hold(Hold::Rate);
        gate.hold(Hold::Unshown);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        assert!(!gate.more_ready());
        gate.release(Hold::Rate);
        assert!(gate.is_held(Hold::Unshown));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Pending);
        gate.release(Hold::Unshown);
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
        assert!(gate.more_ready());
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(gated.poll_next_unpin(&mut cx), Poll::Ready(None));
        assert!(!gate.more_ready());
    }
}
