//! What a node tells the outside world (its Console, a test, a library user): the event stream.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};

use crate::child::ChildName;
use crate::classic::ClassicEvent;
use crate::key::Fingerprint;
use crate::peer::{MessageId, PeerAddr};

/// One thing that happened on a node. The Registry sends these to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A handshake completed: this peer now has a live Session.
    PeerConnected {
        /// The peer's address.
        peer: PeerAddr,
        /// Its name, from its `hello`.
        name: String,
        /// True if this node dialed it.
        outbound: bool,
    },
    /// The peer's Session ended (bye, error, timeout, user's choice); it stays known.
    PeerDisconnected {
        /// The peer's address.
        peer: PeerAddr,
        /// Its name.
        name: String,
        /// Why the connection ended (bye reason, error, timeout, user).
        reason: String,
    },
    /// A `peers` frame told us of a peer we did not know.
    PeerDiscovered {
        /// Its address, as the `peers` frame gave it.
        peer: PeerAddr,
        /// Its name, as the `peers` frame gave it (may be empty).
        name: String,
    },
    /// A chat arrived and is shown for the first time (repeats are acked, not shown again).
    ChatReceived {
        /// Who sent it.
        from: PeerAddr,
        /// The sender's name.
        name: String,
        /// The sender's id for this chat.
        id: MessageId,
        /// The text, as sent (make it `visible` before printing).
        text: String,
        /// When it was sent, by the sender's clock (ms since the Unix epoch).
        sent_at_ms: u64,
    },
    /// Our chat `id` to `to` was acked.
    Delivered {
        /// The recipient.
        to: PeerAddr,
        /// The chat's id, as `send_chat` returned it.
        id: MessageId,
        /// The chat's text.
        text: String,
    },
    /// Chats to `to` wait: it cannot be reached now (`reason`); the next attempt is in
    /// `retry_in`.
    DeliveryDelayed {
        /// The peer that cannot be reached.
        to: PeerAddr,
        /// How many chats wait for it.
        waiting: usize,
        /// Why the last attempt failed.
        reason: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// Our chat `id` to `to` will not be delivered: the retry budget ran out.
    DeliveryFailed {
        /// The recipient.
        to: PeerAddr,
        /// The chat's id.
        id: MessageId,
        /// The chat's text.
        text: String,
        /// Why it was given up.
        reason: String,
    },
    /// Our chat `id` to `to` was accepted but could not be saved in the data directory: it
    /// is sent while the node runs, and lost if the node quits before it is delivered.
    NotSaved {
        /// The recipient.
        to: PeerAddr,
        /// Our id for it.
        id: MessageId,
        /// Why the write failed.
        error: String,
    },
    /// Writing to the data directory failed (the history, an ack's record). Said once, and
    /// again only after a write has worked in between.
    StorageFailed {
        /// Why the write failed.
        error: String,
    },
    /// A connection was refused or closed before its handshake, e.g. for a bad frame.
    ConnectionRefused {
        /// The socket address the connection came from.
        remote: SocketAddr,
        /// Why it was refused or closed.
        reason: String,
    },
    /// Trust on first use: a peer showed another key than the one pinned for its name or
    /// address. Its session was refused; `/trust` accepts the new key.
    KeyChanged {
        /// Where it was (its listening address).
        peer: PeerAddr,
        /// The name it gave (or the one pinned).
        name: String,
        /// What holds the pinned key: `name "bob"` or `address IP:PORT`.
        pinned_by: String,
        /// The pinned key's fingerprint.
        pinned: Fingerprint,
        /// The fingerprint of the key it proved.
        presented: Fingerprint,
    },
    /// A dial expected a key (introduced by a peer, or announced on the LAN) and the peer at
    /// that address proved another: refused, and the introduction dropped.
    KeyMismatch {
        /// The address dialed.
        peer: PeerAddr,
        /// Where the expectation came from (`introduced by bob`, `announced on the LAN`).
        source: String,
        /// The fingerprint expected.
        expected: Fingerprint,
        /// The fingerprint of the key the peer proved.
        presented: Fingerprint,
    },
    /// A classic peer (the plain-text protocol of issue 15) wrote, asked to connect, left, or
    /// sent what is not the classic format.
    Classic(ClassicEvent),
    /// A step of the supervision tree: an actor failed, is restarting, is back, or the
    /// node gave up.
    Supervision {
        /// The actor the step is about.
        actor: ChildName,
        /// What happened to it.
        step: SupervisionStep,
    },
}

/// From the Registry to a display (the Console), after the `ChatReceived` events of one
/// batch: answered once those lines are written out (console flow control: only then are
/// the chats acked). Here with the events, not beside its handler in console.rs, because the
/// Registry sends it and must not depend on the Console.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct WhenShown;

/// Events to a display (the Console) in one mailbox message, oldest first: the `ChatReceived`
/// events of one batch of chats travel together, so a stream costs the display one message
/// per batch, not per chat. Other events come one to a batch.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct NodeEvents(pub EventBatch);

/// Events sent together, oldest first: one inline, as most batches are (a `Vec` was an
/// allocation per chat sent or received in a fan-out; docs/performance.md, fan-out, ninth
/// round).
pub type EventBatch = smallvec::SmallVec<[NodeEvent; 1]>;

/// What the supervisor did about a failed actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisionStep {
    /// The actor failed (stopped as a failure, or panicked).
    Failed {
        /// Why.
        reason: String,
    },
    /// It is being restarted.
    Restarting {
        /// Restarts counted against the budget in the current window.
        restarts_in_window: usize,
    },
    /// It serves again.
    Restarted,
    /// The restart budget is exhausted: the node shuts down.
    Escalated {
        /// Why the node gives up.
        reason: String,
    },
}

impl actix::Message for NodeEvent {
    type Result = ();
}

/// A subscription to a node's events. Also a `Stream`, for actors that `add_stream` it.
pub struct EventStream {
    /// Events come in batches (`Subscriber::Channel`) and are handed out one by one.
    rx: mpsc::UnboundedReceiver<EventBatch>,
    /// The rest of the batch being handed out.
    batch: smallvec::IntoIter<[NodeEvent; 1]>,
}

/// A wait on the event stream ran out of time; says what it saw meanwhile.
#[derive(Debug)]
pub struct WaitTimedOut {
    /// How long the wait lasted.
    pub waited: Duration,
    /// The events that did not match, in order.
    pub seen: Vec<NodeEvent>,
}

impl fmt::Display for WaitTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no matching event within {:?}; saw {:?}",
            self.waited, self.seen
        )
    }
}

impl std::error::Error for WaitTimedOut {}

/// The sending end of a shared [`EventStream`] ([`EventStream::shared`]): every node given
/// it with [`Node::events_to`](crate::Node::events_to) sends its events into that one
/// stream. Cloning it is cheap. The stream ends only once every node given it has stopped
/// and every `EventSink` is dropped: drop yours once the nodes are subscribed, and do not
/// take the end of the stream for the end of one node.
#[derive(Clone, Debug)]
pub struct EventSink(pub(crate) mpsc::UnboundedSender<EventBatch>);

impl EventStream {
    /// One stream for the events of several nodes, and the sink that nodes are given to send
    /// into it. For a program that runs many nodes in one process (a simulation, the bench's
    /// thousand peers): it reads them all from one place, in the order each node sent them,
    /// where a stream per node would cost a wake-up and a poll of its own per batch. The
    /// events do not say which node sent them; subscribe with [`Node::events`](crate::Node::events)
    /// where that matters.
    pub fn shared() -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::unbounded();
        let events = EventStream {
            rx,
            batch: EventBatch::new().into_iter(),
        };
        (EventSink(tx), events)
    }

    /// The next event, or `None` if none comes within `limit` (or the node is gone; for a
    /// shared stream, every node and every sink).
    pub async fn next_within(&mut self, limit: Duration) -> Option<NodeEvent> {
        actix_rt::time::timeout(limit, self.next())
            .await
            .ok()
            .flatten()
    }

    /// Skips events until `pick` returns `Some`, for at most `limit` in all.
    pub async fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&NodeEvent) -> Option<T>,
    ) -> Result<T, WaitTimedOut> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Some(event)) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                    seen.push(event);
                }
                Ok(None) | Err(_) => {
                    return Err(WaitTimedOut {
                        waited: limit,
                        seen,
                    })
                }
            }
        }
    }
}

impl Stream for EventStream {
    type Item = NodeEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<NodeEvent>> {
        loop {
            if let Some(event) = self.batch.next() {
                return Poll::Ready(Some(event));
            }
            match self.rx.poll_next_unpin(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
