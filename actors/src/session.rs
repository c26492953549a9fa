//! Session: owns one TCP connection to one peer, inbound or outbound.
//! It runs the handshake, turns frames into messages for the Registry and the Registry's
//! orders into frames, pings a quiet peer, and always tells the Registry when it ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::config::{LocalIdentity, Timeouts};
use crate::faults::ConnectionFault;
use crate::peer::{MessageId, NodeId, PeerAddr, SessionId};
use crate::registry::{
    AcksReceived, IncomingChats, KnownPeers, PeersLearned, Register, Registry, SessionClosed,
};
use crate::trace::{ask, offer, tell, Role, Traced};
use crate::wire::{encode_frame, Frame, PeerEntry, WireCodec, WireError, PROTOCOL_VERSION};
use crate::writer::{FrameWriter, WriteRefused};

// ---- messages a Session handles ----

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

/// Send these chats to the peer, in this order (from the Registry's outbox). One message
/// carries every chat the Registry queued for this peer in one turn: a mailbox hop per
/// batch, not per chat.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Oldest first.
    pub chats: Vec<Chat>,
}

/// Say `bye` with this reason and close the connection.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Close {
    /// Said in the `bye`.
    pub reason: String,
}

/// From the Registry: these chats from this Session's peer were handed to the console (or
/// were repeats): ack them.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AckChats {
    /// The chats to ack, in the order they came.
    pub ids: Vec<MessageId>,
}

/// From a restarted Registry: register again (it has forgotten the live sessions).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reannounce;

/// Inject a connection fault (see [`crate::faults`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InjectSessionFault(pub ConnectionFault);

/// Ask the peer for its peers (`get_peers`); resolves when its `peers` answer has been
/// passed to the Registry.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RefreshPeers;

// ---- the actor ----

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
    /// Who this node is, for `hello`.
    pub me: LocalIdentity,
    /// Handshake and heartbeat timeouts.
    pub timeouts: Timeouts,
    /// Bytes a Session may queue for a slow reader before it disconnects it.
    pub write_buffer_bytes: usize,
}

/// The peer, once its `hello` is accepted by the Registry.
#[derive(Debug, Clone)]
struct Established {
    peer: PeerAddr,
    node_id: NodeId,
    name: String,
}

/// The Session actor (see the module docs).
pub struct Session {
    id: SessionId,
    direction: Direction,
    remote: SocketAddr,
    local: SocketAddr,
    template: SessionTemplate,
    reader: Option<FramedRead<tokio::net::tcp::OwnedReadHalf, WireCodec>>,
    writer: FrameWriter,
    peer: Option<Established>,
    last_heard: Instant,
    next_nonce: u64,
    closing: bool,
    peers_waiters: Vec<oneshot::Sender<()>>,
    /// Frames still to be discarded (injected fault).
    drop_next: u32,
    /// Chats handed to the Registry and not yet acked.
    acks_pending: u32,
    /// The peer said bye while acks were pending: close once they are sent.
    bye_after_acks: Option<String>,
    /// Chats read and not yet handed to the Registry (see [`Session::flush_inbound`]).
    inbound_chats: Vec<Chat>,
    /// Acks read and not yet handed to the Registry.
    inbound_acks: Vec<MessageId>,
    /// A flush of the two above is scheduled.
    flush_scheduled: bool,
    /// Reports the end to the Registry when the actor is dropped, however it ends.
    death_watch: DeathWatch,
}

/// How long a Session we close keeps reading acks after its bye.
const LINGER: Duration = Duration::from_millis(1000);

/// Most chats and acks handed to the Registry in one message.
const MAX_BATCH: usize = 256;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Starts a Session on an accepted or dialed connection. Fails only if the socket is
    /// already unusable (e.g. reset before we looked at it).
    pub fn start(
        stream: TcpStream,
        direction: Direction,
        template: SessionTemplate,
    ) -> std::io::Result<(SessionId, Addr<Session>)> {
        let remote = stream.peer_addr()?;
        let local = stream.local_addr()?;
        // Chat is small interactive frames: latency matters more than packet count.
        stream.set_nodelay(true)?;
        let (read_half, write_half) = stream.into_split();
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let writer = FrameWriter::spawn(
            write_half,
            template.write_buffer_bytes,
            template.timeouts.idle,
        );
        let dialed = match direction {
            Direction::Outbound { dialed } => Some(dialed),
            Direction::Inbound => None,
        };
        let death_watch = DeathWatch {
            registry: template.registry.clone(),
            session_id: id,
            remote,
            peer: None,
            dialed,
            reason: None,
        };
        let session = Session {
            id,
            direction,
            remote,
            local,
            // Small to start with (it grows for big frames): thousands of idle sessions
            // must not cost 8 KiB of read buffer each.
            reader: Some(FramedRead::with_capacity(read_half, WireCodec, 256)),
            writer,
            template,
            peer: None,
            last_heard: Instant::now(),
            next_nonce: 1,
            closing: false,
            peers_waiters: Vec::new(),
            drop_next: 0,
            acks_pending: 0,
            bye_after_acks: None,
            inbound_chats: Vec::new(),
            inbound_acks: Vec::new(),
            flush_scheduled: false,
            death_watch,
        };
        Ok((id, session.start()))
    }

    fn send_frame(&mut self, frame: &Frame, ctx: &mut Context<Self>) {
        match self.writer.send(frame) {
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
        if self.closing {
            return;
        }
        self.closing = true;
        if let Ok(bye) = encode_frame(&Frame::Bye {
            reason: reason.clone(),
        }) {
            let _ = self.writer.send_bytes(bye);
        }
        self.writer.close();
        self.death_watch.reason = Some(reason);
        ctx.run_later(LINGER, |_, ctx| ctx.stop());
    }

    /// Ends the session now: `bye` (if `say_bye`) and close. The reason goes to the Registry.
    fn close(&mut self, ctx: &mut Context<Self>, reason: String, say_bye: bool) {
        if self.closing {
            return;
        }
        // What the peer sent before whatever ends the session still counts.
        self.flush_inbound(ctx);
        self.closing = true;
        if say_bye {
            // Past the queue limit if need be: the bye is what tells the peer why.
            if let Ok(bye) = encode_frame(&Frame::Bye {
                reason: reason.clone(),
            }) {
                let _ = self.writer.send_bytes(bye);
            }
        }
        tracing::debug!(session = self.id, remote = %self.remote, "closing: {reason}");
        self.death_watch.reason = Some(reason);
        self.writer.close();
        ctx.stop();
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.last_heard.elapsed();
        let timeouts = self.template.timeouts;
        if quiet >= timeouts.idle {
            let reason = format!("timeout: nothing heard for {}", human(timeouts.idle));
            self.close(ctx, reason, true);
        } else if quiet >= timeouts.ping_interval && self.peer.is_some() {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            self.send_frame(&Frame::Ping { nonce }, ctx);
        }
    }

    fn on_hello(
        &mut self,
        protocol: u64,
        node_id: NodeId,
        name: String,
        listen_port: u16,
        ctx: &mut Context<Self>,
    ) {
        if protocol != PROTOCOL_VERSION {
            let reason =
                format!("unsupported protocol {protocol} (this node speaks {PROTOCOL_VERSION})");
            return self.close(ctx, reason, true);
        }
        if listen_port == 0 {
            return self.close(ctx, "hello with listen_port 0".into(), true);
        }
        // The peer is known by the address we reached it at, or else by the IP its
        // connection comes from and the port it says it listens on.
        let peer = match self.direction {
            Direction::Outbound { dialed } => dialed,
            Direction::Inbound => PeerAddr::from_ip_port(self.remote.ip(), listen_port),
        };
        let dialed = match self.direction {
            Direction::Outbound { dialed } => Some(dialed),
            Direction::Inbound => None,
        };
        let register = Register {
            session_id: self.id,
            session: ctx.address(),
            peer,
            dialed,
            node_id,
            name: name.clone(),
            outbound: dialed.is_some(),
            local_ip: self.local.ip(),
            rejoin: false,
        };
        // Wait: nothing else from this peer is handled until the Registry has decided.
        ctx.wait(
            ask(Role::Session, &self.template.registry, register)
                .into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(known)) => {
                        act.peer = Some(Established {
                            peer,
                            node_id,
                            name,
                        });
                        act.death_watch.peer = Some(peer);
                        act.send_frame(&Frame::Peers { peers: known }, ctx);
                    }
                    Ok(Err(refusal)) => act.close(ctx, refusal, true),
                    Err(_) => act.close(ctx, "node is shutting down".into(), true),
                }),
        );
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let Some(established) = self.peer.clone() else {
            return match frame {
                Frame::Hello {
                    protocol,
                    node_id,
                    name,
                    listen_port,
                } => self.on_hello(protocol, node_id, name, listen_port, ctx),
                other => {
                    let reason = format!("expected hello as first frame, got {}", other.kind());
                    self.close(ctx, reason, true)
                }
            };
        };
        let from = established.peer;
        let registry = &self.template.registry;
        match frame {
            Frame::Chat {
                id,
                text,
                sent_at_ms,
            } => {
                // The ack is sent when the Registry says the chat was handed to the console
                // (AckChats); meanwhile the next frames are read.
                self.acks_pending += 1;
                self.inbound_chats.push(Chat {
                    id,
                    text,
                    sent_at_ms,
                });
                self.schedule_flush(ctx);
            }
            Frame::Ack { id } => {
                self.inbound_acks.push(id);
                self.schedule_flush(ctx);
            }
            Frame::GetPeers => {
                ctx.wait(
                    ask(Role::Session, registry, KnownPeers { for_peer: from })
                        .into_actor(self)
                        .map(|known, act, ctx| {
                            if let Ok(peers) = known {
                                act.send_frame(&Frame::Peers { peers }, ctx);
                            }
                        }),
                );
            }
            Frame::Peers { peers } => self.on_peers(from, peers, ctx),
            Frame::Ping { nonce } => self.send_frame(&Frame::Pong { nonce }, ctx),
            Frame::Pong { .. } => {}
            Frame::Bye { reason } => {
                let reason = format!("peer said bye: {}", reason);
                if self.acks_pending == 0 {
                    return self.close(ctx, reason, false);
                }
                // Chats that came before the bye are still being handed over: their acks
                // go out first (the peer lingers to read them), within a bound.
                self.bye_after_acks = Some(reason);
                ctx.run_later(LINGER, |act, ctx| {
                    if let Some(reason) = act.bye_after_acks.take() {
                        act.close(ctx, reason, false);
                    }
                });
            }
            Frame::Hello { .. } => self.close(ctx, "second hello on one connection".into(), true),
            Frame::Unknown => {
                tracing::debug!(session = self.id, "ignoring a frame of unknown type");
            }
        }
    }

    /// Chats and acks are handed to the Registry in batches: every one read from the socket
    /// in this turn of the actor goes in one message. A message per frame would make the
    /// Registry's mailbox, not the network, the limit (docs/performance.md). The flush runs
    /// once the frames that are ready have been read, or at once when a batch is full.
    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.inbound_chats.len() + self.inbound_acks.len() >= MAX_BATCH {
            return self.flush_inbound(ctx);
        }
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            // A spawned future runs after the stream has handed over what it has read.
            ctx.spawn(fut::ready(()).map(|_, act: &mut Self, ctx| act.flush_inbound(ctx)));
        }
    }

    /// Hands the chats and acks read so far to the Registry.
    fn flush_inbound(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        let Some(peer) = self.peer.as_ref() else {
            return;
        };
        let (from, node_id) = (peer.peer, peer.node_id);
        if !self.inbound_chats.is_empty() {
            let chats = IncomingChats {
                session: ctx.address(),
                from,
                node_id,
                chats: std::mem::take(&mut self.inbound_chats),
            };
            self.hand_over(chats, ctx);
        }
        if !self.inbound_acks.is_empty() {
            let acks = AcksReceived {
                from,
                ids: std::mem::take(&mut self.inbound_acks),
            };
            if self.closing {
                // Lingering after our bye: no more reading to hold back.
                tell(Role::Session, &self.template.registry, acks);
            } else {
                self.hand_over(acks, ctx);
            }
        }
    }

    /// As the actor stops: acks read in its last turn go to the Registry without waiting.
    /// (Chats read then are not acked, so their sender sends them again.)
    fn flush_lingering(&mut self) {
        self.flush_scheduled = false;
        let Some(peer) = self.peer.as_ref() else {
            return;
        };
        let from = peer.peer;
        if !self.inbound_acks.is_empty() {
            let ids = std::mem::take(&mut self.inbound_acks);
            tell(
                Role::Session,
                &self.template.registry,
                AcksReceived { from, ids },
            );
        }
    }

    /// Passes a message to the Registry in order, without waiting for it to be
    /// handled. Only when the Registry's mailbox is full does the Session wait, and read no
    /// more frames meanwhile: a flooding peer fills its own TCP window, not our memory.
    fn hand_over<M>(&mut self, message: M, ctx: &mut Context<Self>)
    where
        Registry: Handler<M>,
        M: Message + Send + std::fmt::Debug + 'static,
        M::Result: Send,
    {
        match offer(Role::Session, &self.template.registry, message) {
            Ok(()) => {}
            Err(SendError::Full(message)) => ctx.wait(
                self.template
                    .registry
                    .send(message)
                    .into_actor(self)
                    .map(|_, _, _| ()),
            ),
            Err(SendError::Closed(_)) => {
                self.close(ctx, "node is shutting down".into(), true);
            }
        }
    }

    fn on_peers(&mut self, from: PeerAddr, peers: Vec<PeerEntry>, ctx: &mut Context<Self>) {
        let waiters = std::mem::take(&mut self.peers_waiters);
        // Answer RefreshPeers only after the Registry has taken the list in.
        ctx.wait(
            ask(
                Role::Session,
                &self.template.registry,
                PeersLearned { from, peers },
            )
            .into_actor(self)
            .map(move |_, _, _| {
                for waiter in waiters {
                    let _ = waiter.send(());
                }
            }),
        );
    }
}

impl Traced for Session {
    const ROLE: Role = Role::Session;
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            ctx.add_stream(reader);
        }
        let me = &self.template.me;
        let hello = Frame::Hello {
            protocol: PROTOCOL_VERSION,
            node_id: me.node_id,
            name: me.name.clone(),
            listen_port: me.listen_port,
        };
        self.send_frame(&hello, ctx);
        let hello_timeout = self.template.timeouts.hello;
        ctx.run_later(hello_timeout, move |act, ctx| {
            if act.peer.is_none() {
                let reason = format!("no hello within {}", human(hello_timeout));
                act.close(ctx, reason, true);
            }
        });
        let tick = self
            .template
            .timeouts
            .ping_interval
            .min(self.template.timeouts.idle)
            / 2;
        ctx.run_interval(tick.max(Duration::from_millis(10)), Self::heartbeat);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.flush_lingering();
        self.writer.close();
        if self.death_watch.reason.is_none() {
            // Every orderly end goes through `close`, which gives a reason: none means a crash.
            self.death_watch.reason = Some("session crashed".into());
        }
    }
}

impl StreamHandler<Result<Frame, WireError>> for Session {
    fn handle(&mut self, item: Result<Frame, WireError>, ctx: &mut Context<Self>) {
        if self.drop_next > 0 && item.is_ok() {
            self.drop_next -= 1;
            tracing::info!(session = self.id, "dropped a frame (injected fault)");
            return;
        }
        if self.closing {
            // Lingering after our bye: only acks still matter.
            match (item, &self.peer) {
                (Ok(Frame::Ack { id }), Some(_)) => {
                    self.inbound_acks.push(id);
                    self.schedule_flush(ctx);
                }
                (Ok(Frame::Bye { .. }) | Err(_), _) => ctx.stop(),
                _ => {}
            }
            return;
        }
        if !self.flush_scheduled {
            // The frames of one batch are read in one turn: one clock reading for them all.
            self.last_heard = Instant::now();
        }
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(WireError::Io(err)) => self.close(ctx, format!("connection error: {err}"), false),
            Err(bad) => {
                tracing::warn!(session = self.id, remote = %self.remote, "bad input: {bad}");
                self.close(ctx, format!("protocol error: {bad}"), true);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return ctx.stop();
        }
        if self.bye_after_acks.is_some() {
            return; // The peer's half-close after its bye: our acks still go out.
        }
        self.close(ctx, "connection closed by peer".into(), false);
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        for chat in msg.chats {
            if self.closing {
                return; // Still in the Registry's outbox: it goes out on the next connection.
            }
            let frame = Frame::Chat {
                id: chat.id,
                text: chat.text,
                sent_at_ms: chat.sent_at_ms,
            };
            self.send_frame(&frame, ctx);
        }
    }
}

impl Handler<AckChats> for Session {
    type Result = ();

    fn handle(&mut self, msg: AckChats, ctx: &mut Context<Self>) {
        let count = u32::try_from(msg.ids.len()).unwrap_or(u32::MAX);
        self.acks_pending = self.acks_pending.saturating_sub(count);
        for id in msg.ids {
            if self.closing {
                return;
            }
            self.send_frame(&Frame::Ack { id }, ctx);
        }
        if self.acks_pending == 0 {
            if let Some(reason) = self.bye_after_acks.take() {
                self.close(ctx, reason, false);
            }
        }
    }
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close_gracefully(ctx, msg.reason);
    }
}

impl Handler<Reannounce> for Session {
    type Result = ();

    fn handle(&mut self, _: Reannounce, ctx: &mut Context<Self>) {
        let Some(established) = self.peer.clone() else {
            return; // Still in its handshake: it registers when that completes.
        };
        let register = Register {
            session_id: self.id,
            session: ctx.address(),
            peer: established.peer,
            dialed: None,
            node_id: established.node_id,
            name: established.name,
            outbound: matches!(self.direction, Direction::Outbound { .. }),
            local_ip: self.local.ip(),
            rejoin: true,
        };
        ctx.wait(
            ask(Role::Session, &self.template.registry, register)
                .into_actor(self)
                .map(|answer, act, ctx| match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(refusal)) => act.close(ctx, refusal, true),
                    // The Registry failed again before answering: its next incarnation
                    // asks again. Only a Registry gone for good ends the session.
                    Err(_) if act.template.registry.connected() => {}
                    Err(_) => act.close(ctx, "node is shutting down".into(), true),
                }),
        );
    }
}

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
                let garbage = bytes::Bytes::from_static(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]);
                let _ = self.writer.send_bytes(garbage);
            }
            ConnectionFault::StallReads(how_long) => {
                ctx.wait(actix_rt::time::sleep(how_long).into_actor(self));
            }
            ConnectionFault::DropNext(n) => self.drop_next += n,
            ConnectionFault::Panic => panic!("session panic (injected)"),
        }
    }
}

impl Handler<RefreshPeers> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RefreshPeers, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.peers_waiters.push(tx);
        self.send_frame(&Frame::GetPeers, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Death watch: a guard inside the Session that reports `SessionClosed` when the actor's
/// state is dropped. A clean stop, an error and a panic in a handler all drop it, so the
/// Registry always learns that the connection is gone.
struct DeathWatch {
    registry: Addr<Registry>,
    session_id: SessionId,
    remote: SocketAddr,
    peer: Option<PeerAddr>,
    dialed: Option<PeerAddr>,
    reason: Option<String>,
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        let reason = self
            .reason
            .take()
            .unwrap_or_else(|| "session crashed".to_string());
        tell(
            Role::Session,
            &self.registry,
            SessionClosed {
                session_id: self.session_id,
                remote: self.remote,
                peer: self.peer,
                dialed: self.dialed,
                reason,
            },
        );
    }
}

/// "5s", "500ms": durations as people write them.
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
