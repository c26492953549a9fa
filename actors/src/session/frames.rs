//! A Session's traffic once the handshake is done: frames from the peer become batched
//! messages to the Registry (`IncomingChats`, `AcksReceived`, `PeersLearned`), and the
//! Registry's orders (`Deliver`, `AckChats`, `RefreshPeers`) become frames to the peer.

use actix::prelude::*;
use futures::channel::oneshot;

use std::time::Instant;

use super::{Hold, Session, State, LINGER};
use crate::key::PeerKey;
use crate::limits::{MAX_NAME_BYTES, MAX_PEERS_TAKEN};
use crate::peer::{MessageId, MessageIds, PeerAddr};
use crate::registry::{AcksReceived, IncomingChats, KnownPeers, PeersLearned, Registry};
use crate::trace::{ask, tell, Role};
use crate::wire::{Frame, PeerEntry};

/// Most chats and acks handed to the Registry in one message.
const MAX_BATCH: usize = 256;

/// The chats of one `Deliver`, oldest first: one inline, as most batches are (a `Vec` was
/// an allocation per chat sent in a fan-out; docs/performance.md, fan-out, ninth round).
pub type Chats = smallvec::SmallVec<[Chat; 1]>;

/// One chat as it travels between a Session and the Registry: what a `chat` frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// The sender's id for it.
    pub id: MessageId,
    /// Its text.
    pub text: String,
    /// When it was typed (ms since the Unix epoch, by the sender's clock).
    pub sent_at_ms: u64,
}

impl Session {
    /// A frame from an established peer.
    pub(super) fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let (from, key) = match &self.state {
            State::Established(established) => (established.peer, established.key),
            // Only while the Registry decides, which holds the reading back: never.
            State::Handshake => return,
            State::Lingering(_) => return,
        };
        match frame {
            Frame::Chat {
                id,
                text,
                sent_at_ms,
            } => {
                // The ack is sent when the Registry says the chat was shown (AckChats);
                // meanwhile the next frames are read, within the peer's budgets.
                self.acks_pending += 1;
                self.unacked_bytes += text.len();
                self.hold_if_unshown();
                self.take_chat_token(ctx);
                let chat = Chat {
                    id,
                    text,
                    sent_at_ms,
                };
                self.inbound_chats.push(chat);
                self.schedule_flush(ctx);
            }
            Frame::Ack { id } => self.on_ack(id, ctx),
            Frame::GetPeers => {
                if self
                    .get_peers_bucket
                    .take(self.template.limits.get_peers, Instant::now())
                    .is_err()
                {
                    let rate = self.template.limits.get_peers;
                    let reason = format!(
                        "rate limit: more than {} get_peers per second (burst {})",
                        rate.per_second, rate.burst
                    );
                    return self.close(ctx, reason, true);
                }
                self.answer_get_peers(from, key, ctx)
            }
            Frame::Peers { mut peers } => {
                // A frame can list thousands: at most MAX_PEERS_TAKEN are taken, and none
                // with a name no `hello` may carry.
                peers.truncate(MAX_PEERS_TAKEN);
                peers.retain(|entry| entry.name.len() <= MAX_NAME_BYTES);
                self.on_peers(from, key, peers, ctx)
            }
            Frame::Ping { nonce } => self.send_frame(&Frame::Pong { nonce }, ctx),
            Frame::Pong { .. } => {}
            Frame::Bye { reason } => self.on_bye(reason, ctx),
            Frame::Hello(_) => self.close(ctx, "second hello on one connection".into(), true),
            Frame::Unknown => {
                tracing::debug!(session = self.id, "ignoring a frame of unknown type");
            }
        }
    }

    /// An ack from the peer, for the Registry. The peer acks a chat on the connection it
    /// came by, so acks past the chats sent on this one are not for any chat of ours: they
    /// are dropped here. That bounds what the Registry's mailbox can hold for a peer that
    /// floods acks by the chats we gave it, since a Session hands its batches over without
    /// asking whether that mailbox is full (`hand_over`).
    pub(super) fn on_ack(&mut self, id: MessageId, ctx: &mut Context<Self>) {
        let Some(left) = self.chats_unacked_here.checked_sub(1) else {
            tracing::debug!(
                session = self.id,
                id,
                "an ack for no chat sent here: dropped"
            );
            return;
        };
        self.chats_unacked_here = left;
        self.inbound_acks.push(id);
        self.schedule_flush(ctx);
    }

    /// A chat over the peer's rate: reading stops until its bucket has a token again. The
    /// chat already read goes on; the peer's next ones wait in its own TCP window.
    fn take_chat_token(&mut self, ctx: &mut Context<Self>) {
        let Err(wait) = self.chat_bucket.take(self.chat_limits.rate, Instant::now()) else {
            return;
        };
        if self.gate.is_held(Hold::Rate) {
            return;
        }
        self.gate.hold(Hold::Rate);
        ctx.run_later(wait, |act, _| {
            act.gate.release(Hold::Rate);
            act.heard_after_hold();
        });
    }

    /// Console flow control: chats handed on and not yet shown (so not acked) are bounded in
    /// number and bytes; at the bound the peer is not read until acks make room.
    fn hold_if_unshown(&mut self) {
        let limits = &self.chat_limits;
        if self.acks_pending as usize >= limits.max_unacked_chats
            || self.unacked_bytes >= limits.max_unacked_bytes
        {
            self.gate.hold(Hold::Unshown);
        }
    }

    /// Acks for `count` chats of `bytes` of text went out (or never will): their room is
    /// free again. (Saturating: a failed Registry's acks may still come after `Reannounce`
    /// has forgotten every chat it held.)
    pub(super) fn unacked_done(&mut self, count: usize, bytes: usize) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.acks_pending = self.acks_pending.saturating_sub(count);
        self.unacked_bytes = self.unacked_bytes.saturating_sub(bytes);
        let limits = &self.chat_limits;
        if self.gate.is_held(Hold::Unshown)
            && (self.acks_pending as usize) < limits.max_unacked_chats
            && self.unacked_bytes < limits.max_unacked_bytes
        {
            self.gate.release(Hold::Unshown);
            self.heard_after_hold();
        }
    }

    /// Reading resumes: the silence while it was held was ours, not the peer's.
    fn heard_after_hold(&mut self) {
        if !self.gate.is_closed() {
            self.last_heard = std::time::Instant::now();
        }
    }

    fn on_bye(&mut self, reason: String, ctx: &mut Context<Self>) {
        let reason = format!("peer said bye: {}", reason);
        if self.acks_pending == 0 {
            return self.close(ctx, reason, false);
        }
        // Chats that came before the bye are still being handed over: their acks go out
        // first (the peer lingers to read them), within a bound.
        self.rare().bye_after_acks = Some(reason);
        ctx.run_later(LINGER, |act, ctx| {
            if let Some(reason) = act.take_bye_after_acks() {
                act.close(ctx, reason, false);
            }
        });
    }

    /// Chats and acks are handed to the Registry in batches: every one read from the socket
    /// before it had nothing more goes in one message. A message per frame would make the
    /// Registry's mailbox, not the network, the limit (docs/performance.md). The flush runs
    /// when the reader says it has handed over everything ready (`Incoming::Drained`, the
    /// read gate's mark: actix hands a stream's items over 16 per turn, so a burst spans
    /// turns), or at once when a batch is full.
    pub(super) fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.inbound_chats.len() + self.inbound_acks.len() >= MAX_BATCH {
            return self.flush_inbound(ctx);
        }
        self.flush_scheduled = true;
    }

    /// Hands the chats and acks read so far to the Registry.
    pub(super) fn flush_inbound(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        let Some(peer) = self.state.peer() else {
            return;
        };
        let (from, key) = (peer.peer, peer.key);
        if !self.inbound_chats.is_empty() {
            let chats = IncomingChats {
                session: self.id,
                from,
                key,
                chats: std::mem::take(&mut self.inbound_chats),
            };
            self.hand_over(chats, ctx);
        }
        if !self.inbound_acks.is_empty() {
            let acks = AcksReceived {
                from,
                key,
                ids: std::mem::take(&mut self.inbound_acks),
                session: self.id,
            };
            self.hand_over(acks, ctx);
        }
    }

    /// As the actor stops: acks read in its last turn go to the Registry without waiting.
    /// (Chats read then are not acked, so their sender sends them again.)
    pub(super) fn flush_lingering(&mut self) {
        self.flush_scheduled = false;
        let Some(peer) = self.state.peer() else {
            return;
        };
        let (from, key) = (peer.peer, peer.key);
        if !self.inbound_acks.is_empty() {
            let ids = std::mem::take(&mut self.inbound_acks);
            let acks = AcksReceived {
                from,
                key,
                ids,
                session: self.id,
            };
            tell(Role::Session, &self.template.registry, acks);
        }
    }

    /// Passes a batch to the Registry in order, without waiting for it to be handled and
    /// without asking whether its mailbox is full: what a Session can have there is bounded
    /// already. Its chats count as unshown until acked, and at `max_unacked_chats` (or
    /// bytes) the Session stops reading its peer; its acks never outnumber the chats sent
    /// on this connection (`on_ack`). (Asking, with `try_send`, read a flag actix keeps
    /// apart from everything else the Session touches: one more cache miss per batch in a
    /// process serving many peers; docs/performance.md, fan-out, ninth round.)
    fn hand_over<M>(&mut self, message: M, ctx: &mut Context<Self>)
    where
        Registry: Handler<M>,
        M: Message + Send + std::fmt::Debug + 'static,
        M::Result: Send,
    {
        if !self.template.registry.connected() {
            return self.close(ctx, "node is shutting down".into(), true);
        }
        tell(Role::Session, &self.template.registry, message);
    }

    fn answer_get_peers(&mut self, from: PeerAddr, key: PeerKey, ctx: &mut Context<Self>) {
        let known = ask(
            Role::Session,
            &self.template.registry,
            KnownPeers {
                for_peer: from,
                for_key: key,
            },
        );
        ctx.wait(known.into_actor(self).map(|known, act, ctx| {
            if let Ok(peers) = known {
                act.send_frame(&Frame::Peers { peers }, ctx);
            }
        }));
    }

    fn on_peers(
        &mut self,
        from: PeerAddr,
        key: PeerKey,
        peers: Vec<PeerEntry>,
        ctx: &mut Context<Self>,
    ) {
        let waiters = self
            .rare
            .as_mut()
            .map(|rare| std::mem::take(&mut rare.peers_waiters))
            .unwrap_or_default();
        // Answer RefreshPeers only after the Registry has taken the list in.
        let learned = ask(
            Role::Session,
            &self.template.registry,
            PeersLearned {
                from,
                from_key: key,
                peers,
            },
        );
        ctx.wait(learned.into_actor(self).map(move |_, _, _| {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }));
    }
}

/// Send these chats to the peer, in this order (from the Registry's outbox). One message
/// carries every chat the Registry queued for this peer in one turn: a mailbox hop per
/// batch, not per chat.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Oldest first.
    pub chats: Chats,
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        for chat in msg.chats {
            if self.state.is_lingering() {
                break; // Still in the Registry's outbox: it goes out on the next connection.
            }
            let frame = Frame::Chat {
                id: chat.id,
                text: chat.text,
                sent_at_ms: chat.sent_at_ms,
            };
            self.chats_unacked_here = self.chats_unacked_here.saturating_add(1);
            self.send_frame_held(&frame, ctx);
        }
        // Written from here once all are queued, as `AckChats` does: a fan-out sends one
        // chat per Session, and a wake-up and a poll of the writing task per chat cost
        // the sender more than the write (docs/performance.md, fan-out eighth round).
        self.writer.write_held();
    }
}

/// From the Registry: these chats from this Session's peer were handed to the console (or
/// were repeats): ack them.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AckChats {
    /// The chats to ack, in the order they came.
    pub ids: MessageIds,
    /// Their texts' bytes together: room the Session frees for its peer's next chats
    /// (`Limits::max_unacked_bytes`). The Session keeps only the sum of the chats it handed
    /// on, not each one's size (a queue would be one more cache line per chat).
    pub text_bytes: usize,
}

impl Handler<AckChats> for Session {
    type Result = ();

    fn handle(&mut self, msg: AckChats, ctx: &mut Context<Self>) {
        self.unacked_done(msg.ids.len(), msg.text_bytes);
        // Written from here once all are queued, not by a wake-up of the writing task.
        for id in msg.ids {
            if self.state.is_lingering() {
                break;
            }
            self.send_frame_held(&Frame::Ack { id }, ctx);
        }
        self.writer.write_held();
        if self.state.is_lingering() {
            return;
        }
        if self.acks_pending == 0 {
            if let Some(reason) = self.take_bye_after_acks() {
                self.close(ctx, reason, false);
            }
        }
    }
}

/// Ask the peer for its peers (`get_peers`); resolves when its `peers` answer has been
/// passed to the Registry.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RefreshPeers;

impl Handler<RefreshPeers> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RefreshPeers, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.rare().peers_waiters.push(tx);
        self.send_frame(&Frame::GetPeers, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
