//! The Registry's life with the rest of the node: subscribers of its events (`Subscribe`,
//! `Publish`), quitting (`Shutdown`) and giving up (`Retire`), and injected faults (`Inject`,
//! `InjectConnection`). The phase moves forward here only.

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};

use super::{Phase, Registry};
use crate::events::{EventBatch, NodeEvent, NodeEvents, WhenShown};
use crate::faults::{ConnectionFault, Inject, InjectError};
use crate::guarded_handler;
use crate::peer::{PeerAddr, SessionId};
use crate::session::{AckChats, Close, InjectSessionFault, Session};
use crate::supervision::{guarded, suffer, Retire};
use crate::trace::{tell, Role};

/// Send every future [`NodeEvent`] to this subscriber.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Subscribe(pub Subscriber);

/// Where events go: a channel (tests, library users) or an actor's mailbox (the Console;
/// a mailbox outlives the actor's restarts, a channel it had added as a stream would not).
pub enum Subscriber {
    /// Events sent into a channel (an `EventStream`), each batch (the chats of one
    /// `IncomingChats`, the acks of one `AcksReceived`) as one message: a channel send and a
    /// wake-up per batch, not per event.
    Channel(mpsc::UnboundedSender<EventBatch>),
    /// Events sent to an actor's mailbox.
    Actor(Recipient<NodeEvent>),
    /// A display (the Console): events to its mailbox in batches, and chats acked only once
    /// it answers `WhenShown` ([`Subscriber::display`], registry/chats.rs).
    Display {
        /// Where events go: the chats of one batch in one message.
        events: Recipient<NodeEvents>,
        /// The acks waiting for the display, in order, to its `ack_once_shown` task.
        acks: mpsc::UnboundedSender<(Addr<Session>, AckChats)>,
    },
}

impl Subscriber {
    /// A display subscriber: its events go to `events`; the acks of the chats it is shown
    /// go out once `shown` answers a `WhenShown` sent after their events.
    pub fn display(events: Recipient<NodeEvents>, shown: Recipient<WhenShown>) -> Subscriber {
        let (acks, waiting) = mpsc::unbounded();
        actix_rt::spawn(ack_once_shown(shown, waiting));
        Subscriber::Display { events, acks }
    }
}

/// Console flow control: acks leave only once the display has written out the chats they
/// are for. One task for all, in order (acks must reach each peer in the order its chats
/// came, and the Console's answers are not ordered among themselves otherwise). It takes
/// every batch waiting at once and asks once for them all: one round trip per turn of the
/// display, not per batch. A task of its own, not of the Registry's context: it survives a
/// Registry restart, and the Registry never waits on the terminal. Its queue is bounded by
/// the Sessions: each holds at most `max_unacked_chats` of its peer's chats unacked.
async fn ack_once_shown(
    shown: Recipient<WhenShown>,
    mut waiting: mpsc::UnboundedReceiver<(Addr<Session>, AckChats)>,
) {
    use futures::StreamExt;
    while let Some(first) = waiting.next().await {
        let mut batch = vec![first];
        while let Ok(more) = waiting.try_recv() {
            batch.push(more);
        }
        // Sent after the events of every batch taken (they went to the same mailbox before
        // their acks were queued here). A display gone has nothing to show: ack all the same.
        let _ = shown.send(WhenShown).await;
        for (session, acks) in batch {
            tell(Role::Registry, &session, acks);
        }
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Subscriber::Channel(_) => "Channel",
            Subscriber::Actor(_) => "Actor",
            Subscriber::Display { .. } => "Display",
        })
    }
}

impl Subscriber {
    /// Delivers the events, in order; false if the subscriber is gone. A display gets them
    /// in one message, the others one by one.
    pub(super) fn deliver(&self, events: EventBatch) -> bool {
        let traced = crate::trace::enabled(Role::Registry, Role::Console);
        match self {
            Subscriber::Channel(tx) => tx.unbounded_send(events).is_ok(),
            Subscriber::Actor(recipient) => {
                for event in events {
                    if traced {
                        crate::trace::record(Role::Registry, Role::Console, &event);
                    }
                    recipient.do_send(event);
                }
                recipient.connected()
            }
            Subscriber::Display {
                events: display, ..
            } => {
                if traced {
                    for event in &events {
                        crate::trace::record(Role::Registry, Role::Console, event);
                    }
                }
                display.do_send(NodeEvents(events));
                display.connected()
            }
        }
    }
}

guarded_handler!(Registry, Subscribe, |act, msg, _| act
    .subscribers
    .push(msg.0));

/// From the NodeSupervisor: publish this event to the subscribers.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Publish(pub NodeEvent);

guarded_handler!(Registry, Publish, |act, msg, _| act.emit(msg.0));

/// Quit: wait up to `grace` for acks in flight, then bye to everyone.
#[derive(Message, Debug)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    /// How long to wait for acks of chats in flight.
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
/// What quitting left behind.
pub struct ShutdownReport {
    /// Chats that were still without an ack when the node stopped.
    pub undelivered: usize,
    /// They are kept in the data directory and sent at the next start (but for `not_saved`).
    pub kept: bool,
    /// Of the undelivered chats, those whose save failed: lost, never claimed kept.
    pub not_saved: usize,
}

guarded_handler!(
    Registry,
    Shutdown as ResponseActFuture<Self, ShutdownReport>,
    |act, msg, _| act.on_shutdown(msg),
    on_panic: Box::pin(actix::fut::ready(ShutdownReport::default())),
);

impl Registry {
    fn on_shutdown(&mut self, msg: Shutdown) -> ResponseActFuture<Self, ShutdownReport> {
        self.phase = self.phase.max(Phase::Draining);
        let (acked_tx, acked_rx) = oneshot::channel();
        self.outbox_empty_waiters.push(acked_tx);
        self.check_outbox_empty();
        let drained = actix_rt::time::timeout(msg.grace, acked_rx);
        Box::pin(drained.into_actor(self).then(|_, act, _| {
            act.phase = act.phase.max(Phase::Closing);
            let undelivered = act.outbox.len();
            // With a data directory they stay in the outbox file for the next start, but
            // for those whose save failed.
            let not_saved = act
                .unsaved
                .iter()
                .filter(|id| act.outbox.get(**id).is_some())
                .count();
            let kept = act.store.is_some();
            if !kept {
                act.fail_waiting(None, "node quit before the ack arrived");
            }
            act.close_all("quit");
            let (closed_tx, closed_rx) = oneshot::channel();
            act.no_sessions_waiters.push(closed_tx);
            act.no_sessions_left();
            actix_rt::time::timeout(Duration::from_secs(2), closed_rx)
                .into_actor(act)
                .map(move |_, act, _| {
                    act.let_go_of_data_dir();
                    ShutdownReport {
                        undelivered,
                        kept,
                        not_saved,
                    }
                })
        }))
    }

    /// Bye to every connected peer (reported as disconnected) and to every other Session
    /// (replaced, still in their handshake, rejoining).
    fn close_all(&mut self, reason: &str) {
        let connected = self.peers.connected();
        let told: HashSet<SessionId> = connected
            .iter()
            .filter_map(|key| self.peers.session_of(key).map(|(id, _)| id))
            .collect();
        for key in connected {
            self.disconnect_key(key, reason);
        }
        for (id, live) in self.peers.all_sessions() {
            if !told.contains(id) {
                let close = Close {
                    reason: reason.to_string(),
                };
                live.tell(close);
            }
        }
    }
}

// `Retire` (crate::supervision) comes from the NodeSupervisor when the node gives up: close
// every connection and refuse all further work. The phase survives a restart, so a Registry
// restarted after this stays retired.
guarded_handler!(Registry, Retire, |act, msg, _| act.retire(&msg.reason));

impl Registry {
    fn retire(&mut self, reason: &str) {
        self.phase = Phase::Retired;
        self.close_all(reason);
        if self.store.is_none() {
            self.fail_waiting(None, reason);
        }
        self.let_go_of_data_dir();
    }
}

guarded_handler!(Registry, Inject, |act, msg, ctx| suffer(act, ctx, msg.0));

/// Inject a connection fault into the Session serving `peer`.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), InjectError>")]
pub struct InjectConnection {
    /// The peer whose Session gets the fault.
    pub peer: PeerAddr,
    /// The fault.
    pub fault: ConnectionFault,
}

impl Handler<InjectConnection> for Registry {
    type Result = Result<(), InjectError>;

    fn handle(&mut self, msg: InjectConnection, ctx: &mut Context<Self>) -> Self::Result {
        let peer = msg.peer;
        guarded(
            self,
            ctx,
            move || Err(InjectError::NotConnected(peer)),
            |act, _| {
                let (_, live) = act
                    .peers
                    .session_for(&msg.peer)
                    .ok_or(InjectError::NotConnected(msg.peer))?;
                // A Session that has just stopped (its SessionClosed not here yet) cannot
                // take the fault: the peer is as good as not connected.
                let session = live.addr().ok_or(InjectError::NotConnected(msg.peer))?;
                tell(Role::Registry, &session, InjectSessionFault(msg.fault));
                Ok(())
            },
        )
    }
}
