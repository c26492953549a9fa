//! Chats through the Registry, in the order they travel: the Console's `SendChat` is accepted
//! into the outbox and handed to the peer's Session (`Deliver`); the peer's `IncomingChats`
//! are shown (a `NodeEvent`) and acked (`AckChats`); its `AcksReceived` end our chats'
//! journey. The tick sends unacked chats again and gives up old ones.

use std::fmt;
use std::time::{Instant, SystemTime};

use actix::prelude::*;

use super::{tell_session, Registry, Subscriber};
use crate::events::{EventBatch, NodeEvent};
use crate::guarded_handler;
use crate::helpers::{ms_since_epoch, now_ms};
use crate::key::PeerKey;
use crate::peer::{MessageId, MessageIds, PeerAddr, SessionId};
use crate::session::{AckChats, Chat, Chats, Deliver};
use crate::store::{HistoryEntry, OutboxFull, QueuedChat, MAX_MESSAGE_ID};

use crate::trace::{tell, Role};
use crate::wire::MAX_TEXT_BYTES;

/// Polled by actix after every drain of the Registry's mailbox, for as long as the
/// Registry runs (spawned in `started`, never ready): sends the chats accepted meanwhile
/// (`deliver_accepted`). It replaces a future spawned per turn that had chats, which cost an
/// allocation and another pass over the actor's mailbox and items per `send_chat`
/// (docs/performance.md, fan-out). Should chats be accepted outside a message handler, they
/// would wait for the next poll of the actor: at the latest the next tick.
pub(super) struct EndOfTurn;

impl ActorFuture<Registry> for EndOfTurn {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut Registry,
        _: &mut Context<Registry>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        act.deliver_accepted();
        std::task::Poll::Pending
    }
}

/// Send a chat; connects first if needed. The id comes back at once, the outcome later as
/// `Delivered` or `DeliveryFailed`.
#[derive(Message, Debug)]
#[rtype(result = "Result<MessageId, SendError>")]
pub struct SendChat {
    /// The recipient.
    pub to: PeerAddr,
    /// The text.
    pub text: String,
}

/// Send several chats to one peer, in this order: one message and one answer for them all
/// (`peerchat send` with text from standard input, or a program streaming chats). All are
/// accepted or, if one cannot be, none.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<MessageId>, SendError>")]
pub struct SendChats {
    /// The recipient.
    pub to: PeerAddr,
    /// The texts, oldest first.
    pub texts: Vec<String>,
}

/// Send one text to each of several peers, as a chat of its own to each (`/all`, or a
/// program announcing to many): one message and one answer for them all, each recipient's
/// chat accepted or refused on its own, exactly as a [`SendChat`] to it would be. The
/// Registry takes them in one turn, so the chats to connected peers leave in one batch of
/// `Deliver`s instead of one request apart.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<Result<MessageId, SendError>>, SendError>")]
pub struct SendChatToEach {
    /// The recipients, each sent its own chat, in this order.
    pub to: Vec<PeerAddr>,
    /// The text.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a chat was not accepted.
pub enum SendError {
    /// The address is this node's own.
    SelfAddress,
    /// The text is over `MAX_TEXT_BYTES`.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The node is quitting.
    ShuttingDown,
    /// The Registry failed while taking the message: it was not queued.
    RegistryFailed,
    /// The outbox is at its cap (`StoreLimits`): no new chat until some are delivered or
    /// given up. Says how full it is.
    OutboxFull(String),
    /// Every chat id up to `MAX_MESSAGE_ID` is used: ids never wrap to 0.
    IdsExhausted,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::SelfAddress => write!(f, "that address is this node itself"),
            SendError::TooLong { len } => write!(
                f,
                "message is {len} bytes; the limit is {MAX_TEXT_BYTES} bytes"
            ),
            SendError::ShuttingDown => write!(f, "node is shutting down"),
            SendError::RegistryFailed => write!(
                f,
                "the registry failed taking this message (it was restarted); it was not sent"
            ),
            SendError::OutboxFull(why) => write!(f, "not sent: {why}"),
            SendError::IdsExhausted => write!(
                f,
                "not sent: every message id up to {MAX_MESSAGE_ID} is used (ids never wrap)"
            ),
        }
    }
}

impl std::error::Error for SendError {}

guarded_handler!(
    Registry,
    SendChat,
    |act, msg, ctx| act.on_send_chat(msg, ctx),
    on_panic: Err(SendError::RegistryFailed),
);

guarded_handler!(
    Registry,
    SendChats,
    |act, msg, ctx| act.on_send_chats(msg, ctx),
    on_panic: Err(SendError::RegistryFailed),
);

/// When chats were accepted: the outbox's clock for their deadlines and the wall clock sent
/// with them.
#[derive(Clone, Copy)]
struct AcceptedAt {
    now: Instant,
    sent_at_ms: u64,
}

impl AcceptedAt {
    fn now() -> Self {
        AcceptedAt {
            now: Instant::now(),
            sent_at_ms: now_ms(),
        }
    }
}

guarded_handler!(
    Registry,
    SendChatToEach,
    |act, msg, ctx| Ok(act.on_send_chat_to_each(msg, ctx)),
    on_panic: Err(SendError::RegistryFailed),
);

impl Registry {
    fn on_send_chat_to_each(
        &mut self,
        msg: SendChatToEach,
        ctx: &mut Context<Self>,
    ) -> Vec<Result<MessageId, SendError>> {
        let SendChatToEach { to, mut text } = msg;
        let last = to.len().saturating_sub(1);
        let mut outcomes = Vec::with_capacity(to.len());
        for (index, to) in to.into_iter().enumerate() {
            // The last recipient gets the text itself, the others a copy each.
            let text = if index == last {
                std::mem::take(&mut text)
            } else {
                text.clone()
            };
            outcomes.push(self.on_send_chat(SendChat { to, text }, ctx));
        }
        outcomes
    }

    fn on_send_chat(
        &mut self,
        msg: SendChat,
        ctx: &mut Context<Self>,
    ) -> Result<MessageId, SendError> {
        self.check_sendable(&msg.to, std::slice::from_ref(&msg.text))?;
        if self.classic.is_classic(&msg.to) {
            return self.on_send_classic(msg.to, msg.text, ctx);
        }
        self.check_room(&msg.to, std::slice::from_ref(&msg.text))?;
        let session = self.peers.session_to_send(&msg.to);
        let id = self.accept(msg.to, msg.text, session, AcceptedAt::now());
        self.route_accepted(msg.to, session, ctx);
        Ok(id)
    }

    fn on_send_chats(
        &mut self,
        msg: SendChats,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<MessageId>, SendError> {
        self.check_sendable(&msg.to, &msg.texts)?;
        if self.classic.is_classic(&msg.to) {
            let to = msg.to;
            let mut send = |text| self.on_send_classic(to, text, ctx);
            return msg.texts.into_iter().map(&mut send).collect();
        }
        self.check_room(&msg.to, &msg.texts)?;
        // Looked up once for the batch (four hash lookups): accepting chats changes no Session.
        let session = self.peers.session_to_send(&msg.to);
        // One moment for the batch: reading both clocks cost 110 instructions per chat.
        let at = AcceptedAt::now();
        let ids = msg
            .texts
            .into_iter()
            .map(|text| self.accept(msg.to, text, session, at))
            .collect();
        self.route_accepted(msg.to, session, ctx);
        Ok(ids)
    }

    /// Whether chats with these texts can be sent to `to` now.
    fn check_sendable(&self, to: &PeerAddr, texts: &[String]) -> Result<(), SendError> {
        if self.draining() {
            return Err(SendError::ShuttingDown);
        }
        if self.peers.is_self(to) {
            return Err(SendError::SelfAddress);
        }
        match texts.iter().find(|text| text.len() > MAX_TEXT_BYTES) {
            Some(text) => Err(SendError::TooLong { len: text.len() }),
            None => Ok(()),
        }
    }

    /// Whether the outbox has room for these chats, and ids are left for them: checked
    /// before any is accepted, so that all or none are.
    fn check_room(&self, to: &PeerAddr, texts: &[String]) -> Result<(), SendError> {
        let last = u64::try_from(texts.len())
            .ok()
            .and_then(|count| self.next_message_id.checked_add(count));
        if last.is_none_or(|last| last > MAX_MESSAGE_ID) {
            return Err(SendError::IdsExhausted);
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        let chats: Vec<QueuedChat> = texts
            .iter()
            .map(|text| QueuedChat {
                id: self.next_message_id,
                to: to.to_string(),
                text: text.clone(),
                sent_at_ms: 0,
            })
            .collect();
        store
            .room_for_all(&chats)
            .map_err(|full| SendError::OutboxFull(full.to_string()))
    }

    /// Puts a chat in the outbox (and on disk) and, if its peer is connected (`session`, from
    /// `PeerTable::session_for`), on the way. `check_room` said there is room and an id.
    fn accept(
        &mut self,
        to: PeerAddr,
        text: String,
        session: Option<SessionId>,
        at: AcceptedAt,
    ) -> MessageId {
        // check_room made sure of it; saturating all the same, never wrapping.
        self.next_message_id = self.next_message_id.saturating_add(1).min(MAX_MESSAGE_ID);
        let id = self.next_message_id;
        let AcceptedAt { now, sent_at_ms } = at;
        // On disk before anyone is told it was accepted. A chat that could not be saved is
        // still sent while the node runs, but said to be `not saved` (and never kept).
        if let Some(store) = self.store.as_mut() {
            let queued = QueuedChat {
                id,
                to: to.to_string(),
                text: text.clone(),
                sent_at_ms,
            };
            if let Err(err) = store.queued(&queued) {
                let error = match OutboxFull::in_error(&err) {
                    Some(full) => full.to_string(),
                    None => format!("{}: {err}", store.dir().display()),
                };
                tracing::error!("chat {id} not saved: {error}");
                self.unsaved.insert(id);
                self.emit(NodeEvent::NotSaved { to, id, error });
            }
        }
        self.outbox.insert(id, to, text, sent_at_ms, now);
        if let Some(session) = session {
            // Only this chat: the others for this peer are already on the session.
            self.outbox.hand(id, session, now);
            self.deliver_soon(id, session, to);
        }
        id
    }

    /// After accepting chats for `to`: if it has no Session (`session`), get it one.
    fn route_accepted(
        &mut self,
        to: PeerAddr,
        session: Option<SessionId>,
        ctx: &mut Context<Self>,
    ) {
        if session.is_some()
            // Its Session is rejoining a restarted Registry: the chats go out when it has.
            || self.peers.is_rejoining(&to)
            // A reconnect is scheduled: the chats wait for it with the others.
            || self.dialer.redial_planned(&to)
        {
            return;
        }
        self.dial(to, None, ctx);
    }

    /// Chat `id`, accepted in this turn, goes to `session` in one `Deliver` with every other
    /// chat accepted for it before the Registry's mailbox runs dry: one mailbox hop per batch.
    /// `EndOfTurn` sends them. Only message handlers call this (the `SendChat`s): the
    /// mailbox is drained before the actor's spawned items are polled, `EndOfTurn` among them.
    fn deliver_soon(&mut self, id: MessageId, session: SessionId, to: PeerAddr) {
        self.to_deliver.push((id, session, to));
    }

    /// Sends the chats `deliver_soon` collected, one `Deliver` per Session, each in order.
    pub(super) fn deliver_accepted(&mut self) {
        if self.to_deliver.is_empty() {
            return;
        }
        let mut accepted = std::mem::take(&mut self.to_deliver);
        // Grouped by Session with a stable sort (each Session's chats keep their order), not
        // a search of the batches per chat: a fan-out brings a thousand Sessions in one turn.
        accepted.sort_by_key(|(_, session, _)| *session);
        for group in accepted.chunk_by(|a, b| a.1 == b.1) {
            let Some(&(_, session, to)) = group.first() else {
                continue;
            };
            let chats: Chats = group
                .iter()
                .filter_map(|(id, _, _)| {
                    // Failed, acked or moved to another Session meanwhile: nothing to send here.
                    let out = self.outbox.get(*id)?;
                    (out.on_session == Some(session)).then(|| out.chat(*id))
                })
                .collect();
            if chats.is_empty() {
                continue;
            }
            // Through the address the chats were sent to: `session_to_send` read its line.
            if let Some(handle) = self.peers.handle_to_send(&to, session) {
                tell_session(handle, Deliver { chats });
            }
        }
        // The buffer back for the next turn: an allocation per turn less (a `send_chat` per
        // chat is a turn per chat).
        accepted.clear();
        self.to_deliver = accepted;
    }

    /// Hands every outbox entry written to an address of the key `session` serves that is
    /// not on a live Session to it, in one `Deliver`: chats go to a peer, whichever of its
    /// addresses they were written to.
    pub(super) fn flush_outbox(&mut self, session: SessionId) {
        let Some(live) = self.peers.session(session) else {
            return;
        };
        let mut addrs = self.peers.routes_of(&live.key);
        if !addrs.contains(&live.peer) {
            addrs.push(live.peer);
        }
        let peers = &self.peers;
        let now = Instant::now();
        let mut chats = Vec::new();
        for addr in addrs {
            chats.extend(
                self.outbox
                    .hand_waiting(&addr, session, now, |s| peers.is_live(s)),
            );
        }
        if !chats.is_empty() {
            // Oldest first, whichever address each was written to.
            chats.sort_by_key(|chat| chat.id);
            live.tell(Deliver {
                chats: Chats::from_vec(chats),
            });
        }
    }

    /// Runs every tick: a chat without an ack for the ack timeout is handed to its Session
    /// again; a chat that waited longer than the retry budget is given up.
    pub(super) fn check_outbox(&mut self) {
        let now = Instant::now();
        let mut given_up = Vec::new();
        for (id, out, reason) in self.outbox.give_up_due(now) {
            given_up.push(out.to);
            self.report_failed(id, out.to, out.text, reason);
        }
        for to in given_up {
            self.drop_if_never_answered(&to);
        }
        self.check_outbox_empty();
        for peer in self.outbox.ack_due(now) {
            if let Some((session, _)) = self.peers.session_for(&peer) {
                self.flush_outbox(session);
            }
        }
    }

    /// Reports every outbox entry for `peer` (all, if `None`) as failed and drops it.
    pub(super) fn fail_waiting(&mut self, peer: Option<&PeerAddr>, reason: &str) {
        let failed = match peer {
            Some(peer) => self.outbox.remove_peer(peer),
            None => self.outbox.remove_all(),
        };
        for (id, out) in failed {
            self.report_failed(id, out.to, out.text, reason.to_string());
        }
        self.check_outbox_empty();
    }

    fn report_failed(&mut self, id: MessageId, to: PeerAddr, text: String, reason: String) {
        self.unsaved.remove(&id);
        self.persist(|store| store.done(id, &format!("failed: {reason}")));
        self.emit(NodeEvent::DeliveryFailed {
            to,
            id,
            text,
            reason,
        });
    }

    pub(super) fn check_outbox_empty(&mut self) {
        if self.outbox.is_empty() {
            for waiter in self.outbox_empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// From a Session: chats arrived, in this order (every `chat` frame the Session read in one
/// turn). Once they are handed to the console (or known as repeats), the Registry tells
/// `session` to ack them ([`AckChats`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct IncomingChats {
    /// The Session to tell `AckChats`, by id: the Registry holds its address from its
    /// registration. (An address in every batch cost two allocations: actix gives each
    /// copy of an `Addr` its own sender state.) A Session the Registry no longer lists was
    /// replaced or has ended, and is closing: it sends no acks either way.
    pub session: SessionId,
    /// The peer they came from.
    pub from: PeerAddr,
    /// The key the peer proved (de-duplication is by key and chat id).
    pub key: PeerKey,
    /// The chats, oldest first.
    pub chats: Vec<Chat>,
}

impl fmt::Debug for IncomingChats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingChats")
            .field("from", &self.from)
            .field("key", &self.key)
            .field("chats", &self.chats)
            .field("session", &self.session)
            .finish()
    }
}

guarded_handler!(Registry, IncomingChats, |act, msg, _| act
    .on_incoming_chats(msg));

impl Registry {
    fn on_incoming_chats(&mut self, msg: IncomingChats) {
        // One clock reading and one peer-table lookup per batch (most batches are one chat).
        let now = SystemTime::now();
        let mut name = self.peers.touch_and_name(&msg.key, now);
        let at_ms = ms_since_epoch(now);
        let acks: MessageIds = msg.chats.iter().map(|chat| chat.id).collect();
        let text_bytes = msg.chats.iter().map(|chat| chat.text.len()).sum();
        // The places of repeats, in order: nothing allocated for a batch without one.
        let mut repeats = Vec::new();
        self.inbox
            .first_times(msg.key, acks.iter().copied(), |at, first| {
                if !first {
                    repeats.push(at);
                }
            });
        let to_show = msg.chats.len() - repeats.len();
        let mut repeats = repeats.into_iter().peekable();
        let mut shown = EventBatch::with_capacity(to_show);
        for (at, chat) in msg.chats.into_iter().enumerate() {
            if repeats.next_if_eq(&at).is_some() {
                tracing::debug!(from = %msg.from, id = chat.id, "repeated chat acked again, not shown");
                continue;
            }
            // Recorded before it is shown: after a crash it is not shown again.
            let (entry_name, entry_text) = self.inbox.strings_for_entry(&name, &chat.text);
            let entry = HistoryEntry::In {
                at_ms,
                from: msg.from,
                name: entry_name,
                key: Some(msg.key),
                id: chat.id,
                text: entry_text,
                classic: false,
                cut: false,
            };
            self.record(entry);
            // The last event takes the name itself rather than a copy.
            let name = if shown.len() + 1 == to_show {
                std::mem::take(&mut name)
            } else {
                name.clone()
            };
            shown.push(NodeEvent::ChatReceived {
                from: msg.from,
                name,
                id: chat.id,
                text: chat.text,
                sent_at_ms: chat.sent_at_ms,
            });
        }
        // Their events before their acks are queued: the display's `WhenShown` follows them.
        self.emit_all(shown);
        self.ack_once_shown(
            msg.session,
            AckChats {
                ids: acks,
                text_bytes,
            },
        );
    }

    /// A chat shown or delivered, into the history and the Store (peerchat's, and classic's
    /// from registry/classic.rs).
    pub(super) fn record(&mut self, entry: HistoryEntry) {
        self.persist(|store| store.history(&entry));
        self.inbox.remember(entry);
    }

    /// Console flow control: with a display subscribed, chats are acked only once it has
    /// written them out (its `ack_once_shown` task, registry/lifecycle.rs). Meanwhile the
    /// Session holds them as unacked and stops reading its peer at its bound.
    fn ack_once_shown(&mut self, session: SessionId, acks: AckChats) {
        let Some(session) = self.peers.live_handle(session) else {
            tracing::debug!(session, "no acks: the Session was replaced or has ended");
            return;
        };
        let display = self
            .subscribers
            .iter()
            .find_map(|subscriber| match subscriber {
                // Repeats too, behind the rest: acks reach each peer in the order its chats came.
                Subscriber::Display { acks, .. } => Some(acks.clone()),
                _ => None,
            });
        let unsent = match display {
            Some(display) => display
                .unbounded_send((session.clone(), acks))
                .err()
                .map(|e| e.into_inner().1),
            None => Some(acks),
        };
        if let Some(acks) = unsent {
            tell(Role::Registry, session, acks);
        }
    }
}

/// From a Session: the peer acked these chats of ours (every `ack` frame read in one turn).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AcksReceived {
    /// The peer that acked.
    pub from: PeerAddr,
    /// The key it proved: only chats written to an address of that key are acked by it.
    pub key: PeerKey,
    /// The ids it acked.
    pub ids: MessageIds,
    /// The Session that read them.
    pub session: SessionId,
}

guarded_handler!(Registry, AcksReceived, |act, msg, _| act
    .on_acks_received(msg));

impl Registry {
    fn on_acks_received(&mut self, msg: AcksReceived) {
        // One clock reading for the peer's `last_seen` and the history's time.
        let now = SystemTime::now();
        self.peers.touch_session(msg.session, &msg.key, now);
        let at_ms = ms_since_epoch(now);
        let (from, key) = (msg.from, msg.key);
        let mut delivered = EventBatch::with_capacity(msg.ids.len());
        for id in msg.ids {
            let peers = &self.peers;
            let from_acker = |to: &PeerAddr| *to == from || peers.route(to) == Some(key);
            let Some(out) = self.outbox.take_acked(id, from_acker) else {
                continue; // A repeat, or not for a chat of ours: nothing to do.
            };
            // Hashing the id costs more than the rest of this loop's bookkeeping, and the
            // set is empty unless saving failed.
            if !self.unsaved.is_empty() {
                self.unsaved.remove(&id);
            }
            let entry = HistoryEntry::Out {
                at_ms,
                to: out.to,
                id,
                text: self.inbox.text_for_entry(&out.text),
                classic: false,
            };
            self.persist(|store| {
                store.done(id, "delivered")?;
                store.history(&entry)
            });
            self.inbox.remember(entry);
            delivered.push(NodeEvent::Delivered {
                to: out.to,
                id,
                text: out.text,
            });
        }
        self.emit_all(delivered);
        self.check_outbox_empty();
    }
}

/// The last `limit` chats shown or delivered, oldest first.
#[derive(Message, Debug)]
#[rtype(result = "Vec<HistoryEntry>")]
pub struct History {
    /// How many entries, at most.
    pub limit: usize,
}

guarded_handler!(
    Registry,
    History as MessageResult<History>,
    |act, msg, _| MessageResult(act.inbox.recent(msg.limit)),
    on_panic: MessageResult(Vec::new()),
);
