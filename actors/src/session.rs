//! Session: owns one TCP connection to one peer, inbound or outbound.
//! It runs the Noise handshake (the dialer is the initiator), turns frames into messages for
//! the Registry and the Registry's orders into frames, pings a quiet peer, and always tells
//! the Registry when it ends.
//!
//! This file is the actor's shell: its state (`State`: handshake, established, lingering),
//! starting, closing, the heartbeat and the death watch. What it reads goes through
//! `session/codec.rs` (handshake messages, then transport messages opened into frames); what
//! it writes through the writer, which seals once the handshake is done. The handshake's end
//! and registering are in `session/handshake.rs`, the traffic after it in `session/frames.rs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use tokio::net::TcpStream;

use crate::config::{LocalIdentity, Timeouts};
use crate::faults::ConnectionFault;
use crate::heartbeat::{Beat, Heartbeat};
use crate::helpers::human;
use crate::key::PeerKey;
use crate::limits::{ChatLimits, ConnectionSlot, Limits, TokenBucket, WriteBudget};
use crate::noise::{Handshake, HandshakeOptions, NoiseError};
use crate::peer::{MessageIds, PeerAddr, SessionId};
use crate::registry::{Registry, SessionClosed};
use crate::trace::{tell, Role, Traced};
use crate::wire::{Frame, Hello};
use crate::writer::{FrameWriter, WriteRefused};

mod codec;
mod frames;
mod gate;
mod handshake;
mod lean_read;

use codec::{Handover, Incoming, SessionCodec};
use gate::{Hold, ReadGate};
use lean_read::LeanRead;

pub use frames::{AckChats, Chat, Chats, Deliver, RefreshPeers};
pub use handshake::Reannounce;

use handshake::Established;

/// Which side opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to our Listener.
    Inbound,
    /// We connected to `dialed`.
    Outbound {
        /// The address we dialed: the peer is known by it.
        dialed: PeerAddr,
    },
}

/// What every Session of a node shares: whom to report to and how to behave.
#[derive(Clone)]
pub struct SessionTemplate {
    /// The Registry every Session reports to.
    pub registry: Addr<Registry>,
    /// Who this node is: its keys for the handshake, its name and port for `hello`.
    pub me: LocalIdentity,
    /// Handshake and heartbeat timeouts.
    pub timeouts: Timeouts,
    /// Bytes a Session may queue for a slow reader before it disconnects it.
    pub write_buffer_bytes: usize,
    /// Rates and bounds per peer (docs/limits.md).
    pub limits: Limits,
    /// The bytes queued by every Session's writer together.
    pub write_budget: Arc<WriteBudget>,
    /// The node's heartbeat, which tells each Session when to check its peer's silence.
    pub heartbeat: Heartbeat,
}

/// Where a Session is in its life; it only moves forward.
enum State {
    /// The Noise handshake, then the Registry's answer.
    Handshake,
    /// The Registry accepted the peer: frames flow both ways.
    Established(Established),
    /// Closing: nothing more is sent and only acks are read, for a moment (`LINGER`). The
    /// peer is kept, if it was established, for the acks still handed to the Registry.
    Lingering(Option<Established>),
}

impl State {
    fn peer(&self) -> Option<&Established> {
        match self {
            State::Established(peer) | State::Lingering(Some(peer)) => Some(peer),
            State::Handshake | State::Lingering(None) => None,
        }
    }

    fn is_lingering(&self) -> bool {
        matches!(self, State::Lingering(_))
    }

    /// Moves to `Lingering`; false if it was already there.
    fn linger(&mut self) -> bool {
        match std::mem::replace(self, State::Lingering(None)) {
            State::Handshake => true,
            State::Established(peer) => {
                *self = State::Lingering(Some(peer));
                true
            }
            lingering => {
                *self = lingering;
                false
            }
        }
    }
}

/// The Session actor (see the module docs).
///
/// In the order written (`repr(C)`), the fields every frame read or written touches first,
/// then the rest. Rust would order them by alignment, which spread the hot ones over all
/// seven cache lines of the struct; a process serving many peers finds a Session's lines
/// out of the cache at every chat, and each line is a miss (docs/performance.md, fan-out,
/// ninth round).
#[repr(C)]
pub struct Session {
    // ---- touched by every frame ----
    state: State,
    /// Chats read and not yet handed to the Registry (see `Session::flush_inbound`).
    inbound_chats: Vec<Chat>,
    /// Acks read and not yet handed to the Registry.
    inbound_acks: MessageIds,
    last_heard: Instant,
    /// The peer's budget of chats.
    chat_bucket: TokenBucket,
    /// The limits checked for every chat (the template's, copied: `ChatLimits`).
    chat_limits: ChatLimits,
    /// Shared by every Session the Listener (or one dial) starts: thousands of Sessions must
    /// not each hold a copy of the node's identity and limits.
    template: Arc<SessionTemplate>,
    /// Holds the reader back: a chat rate over budget, or too many chats not yet shown.
    gate: ReadGate,
    writer: FrameWriter,
    id: SessionId,
    /// The text bytes of the chats handed on and not yet acked (`acks_pending` counts them).
    unacked_bytes: usize,
    /// What few Sessions ever need (`Rare`), allocated on first use.
    rare: Option<Box<Rare>>,
    /// Chats handed to the Registry and not yet acked.
    acks_pending: u32,
    /// Chats written to the peer on this connection and not yet acked by it (`on_ack`).
    chats_unacked_here: u32,
    /// A flush of the two above is scheduled.
    flush_scheduled: bool,
    /// The handshake is done: frames are sealed, a `bye` can be said.
    sealing: bool,
    // ---- the rest ----
    direction: Direction,
    remote: SocketAddr,
    /// Our own IP on this connection: with our port, it is us (`Register::local_ip`).
    local_ip: IpAddr,
    /// The peer's budget of `get_peers`.
    get_peers_bucket: TokenBucket,
    /// An inbound connection's place in the Listener's count, given back when this ends.
    slot: Option<ConnectionSlot>,
    next_nonce: u64,
    /// The hello timeout, cancelled once the Registry accepts the peer: a timer left pending
    /// holds its allocation, and a slot among the context's few inline ones, for the
    /// timeout's whole length.
    hello_timer: Option<SpawnHandle>,
}

/// The parts of a Session that few Sessions ever use, boxed: a field inline is paid by every
/// Session of thousands (docs/performance.md, "Many peers").
#[derive(Default)]
struct Rare {
    /// `RefreshPeers` callers waiting for the peer's `peers` frame.
    peers_waiters: Vec<oneshot::Sender<()>>,
    /// The peer said bye while acks were pending: close once they are sent.
    bye_after_acks: Option<String>,
    /// Frames still to be discarded (injected fault).
    drop_next: u32,
    /// The key a dialed peer proved where another was expected.
    presented_key: Option<PeerKey>,
    /// Why the session ended, for the Registry (`SessionClosed`, sent by `drop`): set once,
    /// when it closes.
    end_reason: Option<String>,
}

/// How long a Session we close keeps reading acks after its bye.
const LINGER: Duration = Duration::from_millis(1000);

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Starts a Session on an accepted or dialed connection. Fails only if the socket is
    /// already unusable (e.g. reset before we looked at it).
    pub fn start(
        stream: TcpStream,
        direction: Direction,
        template: Arc<SessionTemplate>,
    ) -> std::io::Result<(SessionId, Addr<Session>)> {
        Self::start_with(stream, direction, None, template, None)
    }

    /// Like `start`, for a dial whose peer must prove `expected_remote` (an introduced,
    /// announced or pinned key): another key fails the handshake, and `SessionClosed` says
    /// which key it was.
    pub fn start_expecting(
        stream: TcpStream,
        direction: Direction,
        expected_remote: Option<PeerKey>,
        template: Arc<SessionTemplate>,
    ) -> std::io::Result<(SessionId, Addr<Session>)> {
        Self::start_with(stream, direction, expected_remote, template, None)
    }

    /// Starts a Session on a connection the Listener accepted and counted in `slot`.
    pub fn start_inbound(
        stream: TcpStream,
        template: Arc<SessionTemplate>,
        slot: ConnectionSlot,
    ) -> std::io::Result<(SessionId, Addr<Session>)> {
        Self::start_with(stream, Direction::Inbound, None, template, Some(slot))
    }

    fn start_with(
        stream: TcpStream,
        direction: Direction,
        expected_remote: Option<PeerKey>,
        template: Arc<SessionTemplate>,
        slot: Option<ConnectionSlot>,
    ) -> std::io::Result<(SessionId, Addr<Session>)> {
        let remote = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let me = &template.me;
        let hello = Hello::new(me.name.clone(), me.listen_port);
        let options = HandshakeOptions {
            expected_remote,
            ..HandshakeOptions::default()
        };
        // The dialer is the initiator: it speaks first.
        let (handshake, message_1) = match direction {
            Direction::Outbound { .. } => {
                let (handshake, first) = Handshake::initiator(&me.keys, &hello, options)
                    .map_err(std::io::Error::other)?;
                (handshake, Some(first))
            }
            Direction::Inbound => (
                Handshake::responder(&me.keys, &hello, options).map_err(std::io::Error::other)?,
                None,
            ),
        };
        // Chat is small interactive frames: latency matters more than packet count.
        stream.set_nodelay(true)?;
        let (read_half, write_half) = stream.into_split();
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let mut writer = FrameWriter::spawn(
            write_half,
            template.write_buffer_bytes,
            template.timeouts.idle,
        )
        .with_budget(template.write_budget.clone());
        if let Some(first) = message_1 {
            let _ = writer.send_bytes(first);
        }
        let gate = ReadGate::default();
        // Small room per read (it grows for big frames), and none held while the peer is
        // quiet: thousands of idle sessions must not cost a read buffer each.
        let reader = gate.guard(LeanRead::new(read_half, SessionCodec::new(handshake), 256));
        let now = Instant::now();
        let session = Session {
            id,
            direction,
            remote,
            local_ip: local.ip(),
            gate,
            chat_bucket: TokenBucket::new(template.limits.chats, now),
            get_peers_bucket: TokenBucket::new(template.limits.get_peers, now),
            chat_limits: ChatLimits::from(&template.limits),
            unacked_bytes: 0,
            slot,
            writer,
            sealing: false,
            template,
            state: State::Handshake,
            last_heard: Instant::now(),
            next_nonce: 1,
            acks_pending: 0,
            chats_unacked_here: 0,
            inbound_chats: Vec::new(),
            inbound_acks: MessageIds::new(),
            flush_scheduled: false,
            hello_timer: None,
            rare: None,
        };
        // The reader goes to the context at once rather than waiting in the Session for
        // `started`: a field that is empty for the Session's whole life still costs its size.
        let addr = Session::create(|ctx| {
            ctx.add_stream(reader);
            session
        });
        Ok((id, addr))
    }

    /// The rarely used parts, allocated now if they were not.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Takes the reason of a bye the peer said while acks were pending, if it did.
    fn take_bye_after_acks(&mut self) -> Option<String> {
        self.rare.as_mut()?.bye_after_acks.take()
    }

    fn send_frame(&mut self, frame: &Frame, ctx: &mut Context<Self>) {
        let queued = self.writer.send(frame);
        self.after_queueing(frame, queued, ctx);
    }

    /// Like `send_frame`, leaving the writing to `self.writer.write_held()` at the end of the
    /// handler (`FrameWriter::send_held`).
    fn send_frame_held(&mut self, frame: &Frame, ctx: &mut Context<Self>) {
        let queued = self.writer.send_held(frame);
        self.after_queueing(frame, queued, ctx);
    }

    fn after_queueing(
        &mut self,
        frame: &Frame,
        queued: Result<(), WriteRefused>,
        ctx: &mut Context<Self>,
    ) {
        match queued {
            Ok(()) => {}
            Err(WriteRefused::QueueFull) => {
                // The bye goes behind what the peer isn't reading; the connection closes
                // anyway once the writer gives up on it.
                let reason = format!(
                    "too slow: {} bytes waiting for the peer to read",
                    self.writer.queued_bytes()
                );
                self.close(ctx, reason, true);
            }
            Err(WriteRefused::BudgetFull) => self.cut_over_budget(ctx),
            Err(WriteRefused::Closed) => {
                self.close(ctx, "connection lost while writing".into(), false);
            }
            Err(WriteRefused::Encode(err)) => {
                tracing::warn!(
                    session = self.id,
                    "cannot encode {} frame: {err}",
                    frame.kind()
                );
            }
        }
    }

    /// Ends the session on our side's request: `bye`, no more frames from us, but acks still
    /// on their way are read for a moment (`LINGER`) so that a chat delivered just before the
    /// bye is not reported as lost.
    fn close_gracefully(&mut self, ctx: &mut Context<Self>, reason: String) {
        if !self.state.linger() {
            return;
        }
        self.say_bye(&reason);
        self.writer.close();
        self.rare().end_reason = Some(reason);
        ctx.run_later(LINGER, |_, ctx| ctx.stop());
    }

    /// Ends the session now: `bye` (if `say_bye`) and close. The reason goes to the Registry.
    fn close(&mut self, ctx: &mut Context<Self>, reason: String, say_bye: bool) {
        if self.state.is_lingering() {
            return;
        }
        // What the peer sent before whatever ends the session still counts.
        self.flush_inbound(ctx);
        self.state.linger();
        if say_bye {
            self.say_bye(&reason);
        }
        tracing::debug!(session = self.id, remote = %self.remote, "closing: {reason}");
        self.rare().end_reason = Some(reason);
        self.writer.close();
        ctx.stop();
    }

    /// Past the queue limit if need be: the bye is what tells the peer why. Only once the
    /// handshake is done: before, there is no channel to say it on.
    fn say_bye(&mut self, reason: &str) {
        if !self.sealing {
            return;
        }
        let bye = Frame::Bye {
            reason: reason.to_string(),
        };
        let _ = self.writer.send_past_limit(&bye);
    }

    /// The node's write budget is over and this peer's queue is among the biggest: cut at
    /// once, what is queued dropped (a `bye` would wait behind the backlog the peer is not
    /// reading), so that its bytes go back to the budget now.
    fn cut_over_budget(&mut self, ctx: &mut Context<Self>) {
        let reason = format!(
            "too slow: {} bytes waiting for the peer to read, and all peers' queues are over \
             the node's {} bytes (--max-write-buffers)",
            self.writer.queued_bytes(),
            self.template.limits.max_write_buffers
        );
        self.writer.reset();
        self.close(ctx, reason, false);
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.writer.over_budget() {
            return self.cut_over_budget(ctx);
        }
        let quiet = self.last_heard.elapsed();
        let timeouts = self.template.timeouts;
        // Silence we cause by not reading (the gate is held) is not the peer's: no timeout.
        // Our pings still go out, so the peer hears from us.
        if quiet >= timeouts.idle && !self.gate.is_closed() {
            let reason = format!("timeout: nothing heard for {}", human(timeouts.idle));
            self.close(ctx, reason, true);
        } else if quiet >= timeouts.ping_interval && self.state.peer().is_some() {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            self.send_frame(&Frame::Ping { nonce }, ctx);
        }
    }
}

impl Traced for Session {
    const ROLE: Role = Role::Session;
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The whole handshake, and the Registry's answer, within the hello timeout.
        let hello_timeout = self.template.timeouts.hello;
        let timer = ctx.run_later(hello_timeout, move |act, ctx| {
            if matches!(act.state, State::Handshake) {
                let reason = format!("no handshake within {}", human(hello_timeout));
                act.close(ctx, reason, false);
            }
        });
        self.hello_timer = Some(timer);
        // The node's heartbeat, not a timer of the Session's own: actix would poll one at
        // every turn of the Session (heartbeat.rs).
        self.template
            .heartbeat
            .join(ctx.address().downgrade().into());
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.flush_lingering();
        self.writer.close();
        if self
            .rare
            .as_ref()
            .is_none_or(|rare| rare.end_reason.is_none())
        {
            // Every orderly end goes through `close`, which gives a reason: none means a crash.
            self.rare().end_reason = Some("session crashed".into());
        }
    }
}

impl StreamHandler<Result<Incoming, NoiseError>> for Session {
    fn handle(&mut self, item: Result<Incoming, NoiseError>, ctx: &mut Context<Self>) {
        if let Ok(Incoming::Drained) = item {
            // Everything ready was read: the batch goes to the Registry.
            if self.flush_scheduled {
                self.flush_inbound(ctx);
            }
            return;
        }
        if let Some(rare) = self.rare.as_deref_mut() {
            if rare.drop_next > 0 && matches!(item, Ok(Incoming::Frame(_))) {
                rare.drop_next -= 1;
                tracing::info!(session = self.id, "dropped a frame (injected fault)");
                return;
            }
        }
        if self.state.is_lingering() {
            // Lingering after our bye: only acks still matter.
            match (item, self.state.peer()) {
                (Ok(Incoming::Frame(Frame::Ack { id })), Some(_)) => self.on_ack(id, ctx),
                (Ok(Incoming::Frame(Frame::Bye { .. })) | Err(_), _) => ctx.stop(),
                _ => {}
            }
            return;
        }
        if !self.flush_scheduled {
            // The frames of one batch: one clock reading for them all.
            self.last_heard = Instant::now();
        }
        match item {
            Ok(Incoming::Frame(frame)) => self.on_frame(frame, ctx),
            Ok(Incoming::Drained) => {} // Handled first, above.
            Ok(Incoming::Reply(message)) => {
                if self.writer.send_bytes(message).is_err() {
                    self.close(ctx, "connection lost while writing".into(), false);
                }
            }
            Ok(Incoming::Established(done)) => {
                let Handover {
                    reply,
                    key,
                    hello,
                    sealer,
                } = *done;
                if let Some(message) = reply {
                    let _ = self.writer.send_bytes(message);
                }
                self.writer.start_sealing(sealer);
                self.sealing = true;
                self.on_handshake_done(key, hello, ctx);
            }
            Err(NoiseError::Io(err)) => self.close(ctx, format!("connection error: {err}"), false),
            Err(bad) => {
                if let NoiseError::UnexpectedKey { presented, .. } = &bad {
                    self.rare().presented_key = Some(*presented);
                }
                tracing::warn!(session = self.id, remote = %self.remote, "bad input: {bad}");
                // A map that decrypted but is bad came from the authenticated peer: it gets a
                // reason. Anything that does not verify, or fails the handshake, is cut.
                let reason = if matches!(self.state, State::Handshake) && !self.sealing {
                    format!("handshake failed: {bad}")
                } else {
                    format!("protocol error: {bad}")
                };
                self.close(ctx, reason, bad.says_bye());
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The read gate marks a drained batch only where the stream would wait; read in one
        // go up to the end (chats, a bye, the peer's half-close) there was no such moment.
        // Handing the batch over now lets its acks go out while this Session still runs.
        if self.flush_scheduled {
            self.flush_inbound(ctx);
        }
        if self.state.is_lingering() {
            return ctx.stop();
        }
        if self
            .rare
            .as_ref()
            .is_some_and(|rare| rare.bye_after_acks.is_some())
        {
            return; // The peer's half-close after its bye: our acks still go out.
        }
        self.close(ctx, "connection closed by peer".into(), false);
    }
}

impl Handler<Beat> for Session {
    type Result = ();

    fn handle(&mut self, _: Beat, ctx: &mut Context<Self>) {
        self.heartbeat(ctx);
    }
}

/// Say `bye` with this reason and close the connection.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Close {
    /// Said in the `bye`.
    pub reason: String,
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close_gracefully(ctx, msg.reason);
    }
}

/// Inject a connection fault (see [`crate::faults`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InjectSessionFault(pub ConnectionFault);

impl Handler<InjectSessionFault> for Session {
    type Result = ();

    fn handle(&mut self, msg: InjectSessionFault, ctx: &mut Context<Self>) {
        tracing::warn!(session = self.id, remote = %self.remote, "injecting {:?}", msg.0);
        match msg.0 {
            ConnectionFault::Reset => {
                // Nothing more is written, not even what is queued, and the socket is shut
                // both ways at once.
                self.writer.reset();
                self.close(ctx, "connection reset (injected)".into(), false);
            }
            ConnectionFault::Corrupt => {
                // Raw, never sealed: to the peer it fails to decrypt, and it must cut the
                // connection at once.
                let garbage = bytes::Bytes::from_static(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]);
                let _ = self.writer.send_bytes(garbage);
            }
            ConnectionFault::StallReads(how_long) => {
                ctx.wait(actix_rt::time::sleep(how_long).into_actor(self));
            }
            ConnectionFault::DropNext(n) => self.rare().drop_next += n,
            ConnectionFault::Panic => panic!("session panic (injected)"),
        }
    }
}

/// The death watch: dropping the Session reports `SessionClosed`. A clean stop, an error and
/// a panic in a handler all drop it, so the Registry always learns that the connection is
/// gone. (A `Drop` on the Session itself rather than a guard field: the guard held copies of
/// the id, the addresses and the Registry's address, paid by every Session.)
impl Drop for Session {
    fn drop(&mut self) {
        // As when the guard was the last field: the writer and the Listener's slot are let
        // go before the Registry hears of the end.
        self.writer.close();
        drop(self.slot.take());
        let reason = self
            .rare
            .as_mut()
            .and_then(|rare| rare.end_reason.take())
            .unwrap_or_else(|| "session crashed".to_string());
        let dialed = match self.direction {
            Direction::Outbound { dialed } => Some(dialed),
            Direction::Inbound => None,
        };
        tell(
            Role::Session,
            &self.template.registry,
            SessionClosed {
                session_id: self.id,
                remote: self.remote,
                peer: self.state.peer().map(|established| established.peer),
                dialed,
                reason,
                presented_key: self
                    .rare
                    .as_mut()
                    .and_then(|rare| rare.presented_key.take()),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    /// Thousands of Sessions each pay every byte of the struct (docs/performance.md, "Many
    /// peers"): a field added inline must be worth it, or go in `Rare`. At 448 B the actor's
    /// task (its context, mailbox and tokio's task cell, in steps of 128 B) takes 896 B.
    #[test]
    fn a_session_stays_small() {
        let size = std::mem::size_of::<super::Session>();
        assert!(size <= 448, "a Session is {size} bytes");
    }
}
