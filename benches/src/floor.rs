//! The fan-out's "floor": the baseline's code (same protocol, same crypto, same console
//! channel, same per-connection dedup) with exactly the actor hops peerchat's fixed design
//! requires added, done with real actix actors and messages and nothing else in them. Its
//! round over the baseline's is the least the design (a Registry actor per node owning the
//! state, a Session actor per connection owning the socket) costs; peerchat over the floor is
//! what its implementation adds on top.
//!
//! How the hops map to peerchat's, per chat:
//!
//! Receiving process (`serve-floor`):
//! - peerchat: Session poll (reads the chat via `add_stream`, sends `IncomingChats`) →
//!   Registry poll (emits the event on the shared stream, tells `AckChats`) → consumer poll
//!   (the event stream) → Session poll (`AckChats`: writes the ack itself, `send_held`).
//! - floor: [`FloorSession`] poll (reads via `add_stream`, `do_send(Incoming)`) →
//!   [`FloorRegistry`] poll (the chat into the console channel, `do_send(AckChat)`) →
//!   `baseline::console` poll → [`FloorSession`] poll (`AckChat`: writes the ack itself).
//!
//! The connection is an actix actor, not a task: the ack must come back as a mailbox
//! message to the actor that owns the socket, and its reads must be polled by that actor's
//! context (as the Session's are, through `ctx.add_stream`), so that the read and the ack
//! are two polls of the same actor task, as in peerchat. It writes from its handlers with
//! `try_write` (a write the socket does not take whole is finished with `ctx.wait`, which
//! holds the actor's other work back, so frames keep their order): no writer task.
//!
//! Sending process (`fanout_floor`):
//! - peerchat: bench → `send_chat` (request to the Registry, reply by oneshot) → Registry
//!   `Deliver` to the Session (hop) → Session queues the frame, its writer task writes it;
//!   the ack: Session reads → `AcksReceived` to the Registry (hop) → Registry emits
//!   `Delivered` on the event stream → bench.
//! - floor: bench → `addr.send(SendChat)` to [`SenderRegistry`] (reply by actix's oneshot) →
//!   `do_send(SendOne)` to the peer's [`FloorConn`] (hop), which writes the chat from its
//!   handler; the ack: [`FloorConn`] reads → `do_send(AckIn)` to the Registry (hop) → the
//!   Registry sends the id on a channel the bench reads.
//!
//! Left out on purpose, because the design does not require them: peerchat's writer task
//! (on `Deliver` the Session queues and a second task writes; the floor writes from the
//! handler, as peerchat's `AckChats` already does), its batching of frames per turn (one
//! chat per connection per round here: nothing to batch), dedup tables and the outbox in
//! the Registry (the floor keeps the baseline's per-connection `Seen` and outbox instead).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use peerchat_actors::noise::{NoiseError, Sealer};
use peerchat_actors::wire::{encode_frame_into, Frame, WireError};
use peerchat_actors::PeerKey;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::baseline::{
    self, now_ms, release, BaseNode, ClientConn, Opened, Seen, Stats, IDLE_TIMEOUT, PING_INTERVAL,
};
use crate::sys::Res;

// ---- writing from an actor ----

/// A connection's writing half as an actor holds it: frames queued in `out`, sealed and
/// written by [`flush`] from the handler that queued them.
pub struct Wire {
    /// `None` while a write the socket did not take at once finishes (under `ctx.wait`).
    half: Option<OwnedWriteHalf>,
    sealer: Sealer,
    out: BytesMut,
    sealed: BytesMut,
}

impl Wire {
    fn new(half: OwnedWriteHalf, sealer: Sealer) -> Wire {
        Wire {
            half: Some(half),
            sealer,
            out: BytesMut::new(),
            sealed: BytesMut::new(),
        }
    }

    /// Queues `frame`; one that does not encode (a text over the limit) is refused.
    fn queue(&mut self, frame: &Frame) -> Result<(), WireError> {
        encode_frame_into(frame, &mut self.out)
    }
}

/// Seals what is queued and writes it now (`try_write`); what the socket does not take is
/// written under `ctx.wait`. A broken connection stops the actor.
fn flush<A>(wire: &mut Wire, ctx: &mut Context<A>, pick: fn(&mut A) -> &mut Wire)
where
    A: Actor<Context = Context<A>>,
{
    if wire.out.is_empty() {
        return;
    }
    // A write still going: it flushes what was queued meanwhile when it is done.
    let Some(mut half) = wire.half.take() else {
        return;
    };
    if wire
        .sealer
        .seal_frames(&wire.out, &mut wire.sealed)
        .is_err()
    {
        ctx.stop();
        return;
    }
    release(&mut wire.out);
    let mut at = 0;
    let written = loop {
        if at == wire.sealed.len() {
            break Ok(true);
        }
        match half.try_write(&wire.sealed[at..]) {
            Ok(n) => at += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break Ok(false),
            Err(err) => break Err(err),
        }
    };
    match written {
        Ok(true) => {
            release(&mut wire.sealed);
            wire.half = Some(half);
        }
        Ok(false) => {
            let rest = wire.sealed.split_off(at);
            release(&mut wire.sealed);
            let write = async move {
                let result = half.write_all(&rest).await;
                (half, result)
            };
            ctx.wait(
                fut::wrap_future::<_, A>(write).map(move |(half, result), act, ctx| {
                    if result.is_err() {
                        ctx.stop();
                        return;
                    }
                    let wire = pick(act);
                    wire.half = Some(half);
                    flush(wire, ctx, pick);
                }),
            );
        }
        Err(_) => ctx.stop(),
    }
}

// ---- the receiving process ----

/// A chat read by a [`FloorSession`], to its node's [`FloorRegistry`].
#[derive(Message)]
#[rtype(result = "()")]
struct Incoming {
    session: Addr<FloorSession>,
    from: SocketAddr,
    id: u64,
    text: String,
}

/// From the [`FloorRegistry`]: the chat was handed to the console, ack it.
#[derive(Message)]
#[rtype(result = "()")]
struct AckChat {
    id: u64,
}

/// The stand-in for a node's Registry: hands each chat to the console channel and tells
/// the Session to ack it. Nothing else.
struct FloorRegistry {
    console: mpsc::UnboundedSender<(SocketAddr, u64, String)>,
}

impl Actor for FloorRegistry {
    type Context = Context<Self>;
}

impl Handler<Incoming> for FloorRegistry {
    type Result = ();

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) {
        let _ = self.console.send((msg.from, msg.id, msg.text));
        msg.session.do_send(AckChat { id: msg.id });
    }
}

/// The stand-in for a Session: the baseline's `session_loop` as an actor, with the console
/// send and the ack's write split by the trip through the [`FloorRegistry`].
struct FloorSession {
    node: Rc<BaseNode>,
    registry: Addr<FloorRegistry>,
    wire: Wire,
    seen: Seen,
    peer: SocketAddr,
    key: PeerKey,
    last_heard: Instant,
    nonce: u64,
}

impl FloorSession {
    fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }

    fn send(&mut self, frame: &Frame, ctx: &mut Context<Self>) {
        if self.wire.queue(frame).is_err() {
            return ctx.stop();
        }
        flush(&mut self.wire, ctx, Self::wire);
    }

    fn bye(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.send(
            &Frame::Bye {
                reason: reason.into(),
            },
            ctx,
        );
        ctx.stop();
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.last_heard.elapsed();
        if quiet >= IDLE_TIMEOUT {
            self.bye("timeout", ctx);
        } else if quiet >= PING_INTERVAL {
            self.nonce += 1;
            let ping = Frame::Ping { nonce: self.nonce };
            self.send(&ping, ctx);
        }
    }
}

impl Actor for FloorSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let tick = (PING_INTERVAL.min(IDLE_TIMEOUT) / 2).max(Duration::from_millis(10));
        ctx.run_interval(tick, Self::heartbeat);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.node.stats.bump(&self.node.stats.disconnected);
    }
}

impl StreamHandler<Result<Frame, NoiseError>> for FloorSession {
    fn handle(&mut self, item: Result<Frame, NoiseError>, ctx: &mut Context<Self>) {
        let frame = match item {
            Ok(frame) => frame,
            Err(err) => {
                if err.says_bye() {
                    self.bye("protocol error", ctx);
                } else {
                    ctx.stop();
                }
                return;
            }
        };
        self.last_heard = Instant::now();
        match frame {
            Frame::Chat { id, text, .. } => {
                if self.seen.first_time(id) {
                    self.registry.do_send(Incoming {
                        session: ctx.address(),
                        from: self.peer,
                        id,
                        text,
                    });
                } else {
                    self.send(&Frame::Ack { id }, ctx);
                }
            }
            Frame::Ping { nonce } => self.send(&Frame::Pong { nonce }, ctx),
            Frame::GetPeers => {
                let peers = self.node.register(self.peer, &self.node.me.name, self.key);
                self.send(&Frame::Peers { peers }, ctx);
            }
            Frame::Peers { peers } => self.node.learn(peers),
            Frame::Bye { .. } => ctx.stop(),
            Frame::Hello { .. } => self.bye("second hello on one connection", ctx),
            Frame::Ack { .. } | Frame::Pong { .. } | Frame::Unknown => {}
        }
    }
}

impl Handler<AckChat> for FloorSession {
    type Result = ();

    fn handle(&mut self, msg: AckChat, ctx: &mut Context<Self>) {
        self.send(&Frame::Ack { id: msg.id }, ctx);
    }
}

/// The baseline's `serve_conn` up to its session loop, which becomes a [`FloorSession`].
async fn floor_conn(stream: TcpStream, node: Rc<BaseNode>, registry: Addr<FloorRegistry>) {
    let Opened {
        peer,
        key,
        reader,
        writer,
        ..
    } = match baseline::open_served(stream, &node).await {
        Ok(opened) => opened,
        Err(registered) => return node.stats.bump_ended(registered),
    };
    let (half, sealer) = writer.into_parts();
    FloorSession::create(move |ctx| {
        ctx.add_stream(reader);
        FloorSession {
            node,
            registry,
            wire: Wire::new(half, sealer),
            seen: Seen::default(),
            peer,
            key,
            last_heard: Instant::now(),
            nonce: 0,
        }
    });
}

/// `serve-floor --nodes N`: N baseline nodes whose connections are actors and whose chats go
/// through a Registry stand-in per node, in one actix system (tokio current-thread and a
/// LocalSet, as the baseline's runtime).
pub fn serve_floor(nodes: usize) -> Res<()> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let stats = Stats::new();
        let (chats_tx, chats_rx) = mpsc::unbounded_channel();
        actix_rt::spawn(baseline::console(chats_rx, stats.clone()));
        let ports = crate::serve::start_baseline_nodes(nodes, &stats, &chats_tx, |node| {
            let registry = FloorRegistry {
                console: chats_tx.clone(),
            }
            .start();
            move |stream| floor_conn(stream, node.clone(), registry.clone())
        })
        .await?;
        crate::serve::ready(&ports)?;
        crate::serve::control(stats).await?;
        std::process::exit(0)
    })
}

// ---- the sending process ----

/// From the bench to the sender's Registry stand-in: send this chat to peer `peer` (an
/// index into its connections); answers the chat's id.
#[derive(Message)]
#[rtype(result = "Result<u64, String>")]
pub struct SendChat {
    pub peer: usize,
    pub text: String,
}

/// From the Registry stand-in to a connection: write this chat.
#[derive(Message)]
#[rtype(result = "()")]
struct SendOne {
    id: u64,
    text: String,
}

/// From a connection to the Registry stand-in: the peer acked this chat.
#[derive(Message)]
#[rtype(result = "()")]
struct AckIn {
    id: u64,
}

/// The sending node's Registry stand-in: gives ids, routes chats to connections, reports
/// acks on a channel. Nothing else.
pub struct SenderRegistry {
    conns: Vec<Addr<FloorConn>>,
    next_id: u64,
    acks: mpsc::UnboundedSender<u64>,
}

impl Actor for SenderRegistry {
    type Context = Context<Self>;
}

impl Handler<SendChat> for SenderRegistry {
    type Result = Result<u64, String>;

    fn handle(&mut self, msg: SendChat, _: &mut Context<Self>) -> Self::Result {
        let Some(conn) = self.conns.get(msg.peer) else {
            return Err(format!("no connection {}", msg.peer));
        };
        self.next_id += 1;
        let id = self.next_id;
        match conn.try_send(SendOne { id, text: msg.text }) {
            Err(SendError::Closed(_)) => Err(format!("connection {} ended", msg.peer)),
            // A full mailbox (`try_send` keeps to its capacity): `do_send` does not.
            Err(SendError::Full(send)) => {
                conn.do_send(send);
                Ok(id)
            }
            Ok(()) => Ok(id),
        }
    }
}

impl Handler<AckIn> for SenderRegistry {
    type Result = ();

    fn handle(&mut self, msg: AckIn, _: &mut Context<Self>) {
        let _ = self.acks.send(msg.id);
    }
}

/// The stand-in for a sending Session: the baseline's `fanout_conn` as an actor.
pub struct FloorConn {
    registry: Addr<SenderRegistry>,
    wire: Wire,
    outbox: HashMap<u64, Frame>,
}

impl FloorConn {
    fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }
}

impl Actor for FloorConn {
    type Context = Context<Self>;
}

impl Handler<SendOne> for FloorConn {
    type Result = ();

    fn handle(&mut self, msg: SendOne, ctx: &mut Context<Self>) {
        let chat = Frame::Chat {
            id: msg.id,
            text: msg.text,
            sent_at_ms: now_ms(),
        };
        if let Err(err) = self.wire.queue(&chat) {
            // The bench checks the text before the rounds (`fanout_floor`): not reached.
            eprintln!("floor: cannot encode chat {}: {err}", msg.id);
            return ctx.stop();
        }
        flush(&mut self.wire, ctx, Self::wire);
        self.outbox.insert(msg.id, chat);
    }
}

impl StreamHandler<Result<Frame, NoiseError>> for FloorConn {
    fn handle(&mut self, item: Result<Frame, NoiseError>, ctx: &mut Context<Self>) {
        match item {
            Ok(Frame::Ack { id }) => {
                if self.outbox.remove(&id).is_some() {
                    self.registry.do_send(AckIn { id });
                }
            }
            Ok(Frame::Ping { nonce }) => {
                if self.wire.queue(&Frame::Pong { nonce }).is_ok() {
                    flush(&mut self.wire, ctx, Self::wire);
                }
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

/// Starts the sender's Registry stand-in and a connection actor per dialed connection (in
/// the order given); acks come out of the returned channel.
pub fn sender(
    conns: Vec<ClientConn>,
    first_id: u64,
) -> (Addr<SenderRegistry>, mpsc::UnboundedReceiver<u64>) {
    let (acks_tx, acks) = mpsc::unbounded_channel();
    let registry_ctx = Context::<SenderRegistry>::new();
    let registry = registry_ctx.address();
    let addrs = conns
        .into_iter()
        .map(|conn| {
            let (half, sealer) = conn.writer.into_parts();
            let reader = conn.reader;
            let wire = Wire::new(half, sealer);
            let registry = registry.clone();
            FloorConn::create(move |ctx| {
                ctx.add_stream(reader);
                FloorConn {
                    registry,
                    wire,
                    outbox: HashMap::new(),
                }
            })
        })
        .collect();
    registry_ctx.run(SenderRegistry {
        conns: addrs,
        next_id: first_id,
        acks: acks_tx,
    });
    (registry, acks)
}
