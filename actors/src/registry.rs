//! Registry: owns the peer set (every peer this node knows, which Session serves each connected
//! one), the outbox of chats waiting for an ack, and the record of chats already shown.
//! Sessions report to it; the Console and `Node` ask it; it dials peers and emits NodeEvents.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::future::join_all;
use tokio::net::TcpStream;

use crate::config::RetryPolicy;
use crate::config::{LocalIdentity, NodeConfig, Timeouts};
use crate::events::NodeEvent;
use crate::faults::{ConnectionFault, Inject, InjectError};
use crate::peer::{MessageId, NodeId, PeerAddr, PeerInfo, SessionId};
use crate::session::{human, Close, Deliver, Direction, RefreshPeers, Session, SessionTemplate};
use crate::session::{AckChats, Chat, InjectSessionFault, Reannounce};
use crate::store::{HistoryEntry, QueuedChat, Recovered, Store};
use crate::supervisor::{
    guarded, suffer, ChildFailed, ChildName, ChildRestarted, NodeSupervisor, SupervisedChild,
};
use crate::trace::{ask, tell, Role, Traced};
use crate::wire::{PeerEntry, MAX_TEXT_BYTES};

// ---- messages the Registry handles ----

/// Send every future [`NodeEvent`] to this subscriber.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Subscribe(pub Subscriber);

/// Where events go: a channel (tests, library users) or an actor's mailbox (the Console;
/// a mailbox outlives the actor's restarts, a channel it had added as a stream would not).
pub enum Subscriber {
    /// Events sent into a channel (an `EventStream`).
    Channel(mpsc::UnboundedSender<NodeEvent>),
    /// Events sent to an actor's mailbox.
    Actor(Recipient<NodeEvent>),
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Subscriber::Channel(_) => "Channel",
            Subscriber::Actor(_) => "Actor",
        })
    }
}

impl Subscriber {
    /// Delivers the event; false if the subscriber is gone.
    fn deliver(&self, event: NodeEvent) -> bool {
        match self {
            Subscriber::Channel(tx) => tx.unbounded_send(event).is_ok(),
            Subscriber::Actor(recipient) => {
                if crate::trace::enabled(Role::Registry, Role::Console) {
                    crate::trace::record(Role::Registry, Role::Console, &event);
                }
                recipient.do_send(event);
                recipient.connected()
            }
        }
    }
}

/// From the NodeSupervisor: publish this event to the subscribers.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Publish(pub NodeEvent);

/// From the NodeSupervisor when the node gives up: close every connection and refuse all
/// further work.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire {
    /// Said in the `bye` to every peer.
    pub reason: String,
}

/// Inject a connection fault into the Session serving `peer`.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), InjectError>")]
pub struct InjectConnection {
    /// The peer whose Session gets the fault.
    pub peer: PeerAddr,
    /// The fault.
    pub fault: ConnectionFault,
}

/// From a Session whose peer said `hello`: may it serve this peer? `Ok` carries the peers to
/// announce to it; `Err` the reason for its `bye`.
#[derive(Message)]
#[rtype(result = "Result<Vec<PeerEntry>, String>")]
pub struct Register {
    /// The registering Session's id.
    pub session_id: SessionId,
    /// Its address, for the Registry's orders.
    pub session: Addr<Session>,
    /// The peer's address (the dialed one, or remote IP and `listen_port`).
    pub peer: PeerAddr,
    /// The address dialed, for a connection we opened.
    pub dialed: Option<PeerAddr>,
    /// The peer's node id, from its `hello`.
    pub node_id: NodeId,
    /// The peer's name, from its `hello`.
    pub name: String,
    /// True if this node opened the connection.
    pub outbound: bool,
    /// Our own IP on this connection: an address of ours, so never a peer.
    pub local_ip: IpAddr,
    /// Registering again after a Registry restart, not a new connection.
    pub rejoin: bool,
}

impl std::fmt::Debug for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Register")
            .field("session", &self.session_id)
            .field("peer", &self.peer)
            .field("name", &self.name)
            .field("outbound", &self.outbound)
            .field("rejoin", &self.rejoin)
            .finish()
    }
}

/// From a Session's death watch: it has ended, for `reason`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionClosed {
    /// The Session that ended.
    pub session_id: SessionId,
    /// The socket address at the other end.
    pub remote: SocketAddr,
    /// Set once the handshake completed.
    pub peer: Option<PeerAddr>,
    /// Set for connections we opened.
    pub dialed: Option<PeerAddr>,
    /// Why it ended.
    pub reason: String,
}

/// From a Session: chats arrived, in this order (every `chat` frame the Session read in one
/// turn). Once they are handed to the console (or known as repeats), the Registry tells
/// `session` to ack them ([`AckChats`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct IncomingChats {
    /// The Session to tell `AckChats`.
    pub session: Addr<Session>,
    /// The peer they came from.
    pub from: PeerAddr,
    /// The peer's node id (de-duplication is by node id and chat id).
    pub node_id: NodeId,
    /// The chats, oldest first.
    pub chats: Vec<Chat>,
}

impl std::fmt::Debug for IncomingChats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingChats")
            .field("from", &self.from)
            .field("node_id", &self.node_id)
            .field("chats", &self.chats)
            .finish()
    }
}

/// From a Session: the peer acked these chats of ours (every `ack` frame read in one turn).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AcksReceived {
    /// The peer that acked.
    pub from: PeerAddr,
    /// The ids it acked.
    pub ids: Vec<MessageId>,
}

/// From a Session: the peer's `peers` frame.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeersLearned {
    /// The peer that sent the frame.
    pub from: PeerAddr,
    /// Its entries.
    pub peers: Vec<PeerEntry>,
}

/// From a Session answering `get_peers`: what we know, as told to `for_peer`.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PeerEntry>")]
pub struct KnownPeers {
    /// The peer the list is for (left out of it).
    pub for_peer: PeerAddr,
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

/// Connect to a peer (resolves when the handshake is done or has failed).
#[derive(Message, Debug)]
#[rtype(result = "Result<ConnectOutcome, ConnectError>")]
pub struct Connect {
    /// The peer to connect to.
    pub to: PeerAddr,
}

/// Menu 3: ask connected peers for their peers, then connect to every known one.
#[derive(Message, Debug)]
#[rtype(result = "ConnectAllReport")]
pub struct ConnectAll;

/// The last `limit` chats shown or delivered, oldest first.
#[derive(Message, Debug)]
#[rtype(result = "Vec<HistoryEntry>")]
pub struct History {
    /// How many entries, at most.
    pub limit: usize,
}

/// Menu 2.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct ListPeers;

/// Menu 5: bye to one peer, which stays known.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), NotConnected>")]
pub struct Disconnect {
    /// The peer to say bye to.
    pub peer: PeerAddr,
}

/// Menu 4: bye to every connected peer; answers how many.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DisconnectAll;

/// Quit: wait up to `grace` for acks in flight, then bye to everyone.
#[derive(Message, Debug)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    /// How long to wait for acks of chats in flight.
    pub grace: Duration,
}

// ---- answers and errors ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How a connect ended well.
pub enum ConnectOutcome {
    /// A new connection was made.
    Connected,
    /// There was one already.
    AlreadyConnected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a connect failed.
pub enum ConnectError {
    /// The address is this node's own.
    SelfAddress,
    /// Nothing listens there.
    Refused,
    /// No answer within the connect timeout.
    TimedOut(Duration),
    /// Another network error (unreachable host, ...).
    Unreachable(String),
    /// TCP connected but the handshake failed (bad hello, duplicate, bye...).
    Handshake(String),
    /// The node is quitting.
    ShuttingDown,
    /// The Registry failed while handling the request (it has been restarted).
    RegistryFailed,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::SelfAddress => write!(f, "that address is this node itself"),
            ConnectError::Refused => write!(f, "connection refused (is a peer listening there?)"),
            ConnectError::TimedOut(d) => write!(f, "no answer within {}", human(*d)),
            ConnectError::Unreachable(why) => write!(f, "cannot connect: {why}"),
            ConnectError::Handshake(why) => write!(f, "handshake failed: {why}"),
            ConnectError::ShuttingDown => write!(f, "node is shutting down"),
            ConnectError::RegistryFailed => {
                write!(
                    f,
                    "the registry failed handling this (it was restarted); try again"
                )
            }
        }
    }
}

impl std::error::Error for ConnectError {}

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
        }
    }
}

impl std::error::Error for SendError {}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Disconnect of a peer that is not connected.
pub struct NotConnected(pub PeerAddr);

impl fmt::Display for NotConnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not connected to {}", self.0)
    }
}

impl std::error::Error for NotConnected {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
/// What menu 3 did.
pub struct ConnectAllReport {
    /// Peers that were connected already.
    pub already_connected: Vec<PeerAddr>,
    /// Every dial and how it ended.
    pub attempts: Vec<(PeerAddr, Result<ConnectOutcome, ConnectError>)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
/// What quitting left behind.
pub struct ShutdownReport {
    /// Chats that were still without an ack when the node stopped.
    pub undelivered: usize,
    /// They are kept in the data directory and sent at the next start.
    pub kept: bool,
}

// ---- the actor ----

#[derive(Debug, Default)]
struct PeerRecord {
    name: Option<String>,
    node_id: Option<NodeId>,
    /// The Session serving it, if connected.
    session: Option<SessionId>,
    last_seen: Option<SystemTime>,
}

struct LiveSession {
    addr: Addr<Session>,
    peer: PeerAddr,
    node_id: NodeId,
    outbound: bool,
}

struct Outgoing {
    to: PeerAddr,
    text: String,
    sent_at_ms: u64,
    /// The Session it was handed to; `None` while waiting for a connection.
    on_session: Option<SessionId>,
    /// When it was last handed to a Session: no ack within the ack timeout sends it again.
    handed_at: Option<Instant>,
    /// When it was accepted: the retry budget counts from here.
    queued_at: Instant,
    /// Why the last attempt to reach its peer failed.
    last_error: Option<String>,
}

impl Outgoing {
    /// The chat as a Session sends it (the outbox keeps its copy for resends).
    fn chat(&self, id: MessageId) -> Chat {
        Chat {
            id,
            text: self.text.clone(),
            sent_at_ms: self.sent_at_ms,
        }
    }
}

/// Chat ids already shown from one sender, to show a resent chat once. Bounded: the last
/// `SEEN_PER_SENDER` are remembered.
///
/// A B-tree, not a hash set: a sender's ids grow one by one, so the new id and the oldest
/// one are at the two ends of the tree, which stay in the CPU cache. A hash set scatters
/// consecutive ids over a megabyte and paid a cache miss for each (docs/performance.md).
#[derive(Default)]
struct SeenChats {
    ids: BTreeSet<MessageId>,
    order: VecDeque<MessageId>,
}

const SEEN_PER_SENDER: usize = 65536;

impl SeenChats {
    /// True the first time an id is offered.
    fn first_time(&mut self, id: MessageId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_PER_SENDER {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

type DialWaiter = oneshot::Sender<Result<ConnectOutcome, ConnectError>>;

/// Reconnect state of one peer that has chats waiting.
struct Redial {
    attempt: u32,
    timer: SpawnHandle,
}

/// Most entries in one `peers` frame (docs/protocol.md, section 6.2).
pub const PEERS_PER_FRAME: usize = 256;

/// Chats kept in memory for `/history`.
const HISTORY_IN_MEMORY: usize = 1000;

/// The Registry actor (see the module docs).
pub struct Registry {
    me: LocalIdentity,
    timeouts: Timeouts,
    write_buffer_bytes: usize,
    peers: BTreeMap<PeerAddr, PeerRecord>,
    sessions: HashMap<SessionId, LiveSession>,
    /// Boxed: the B-tree shifts its entries when the oldest is removed (the usual ack), and
    /// a pointer is cheaper to shift than the whole record.
    outbox: BTreeMap<MessageId, Box<Outgoing>>,
    next_message_id: MessageId,
    seen: HashMap<NodeId, SeenChats>,
    /// Dials in progress, with whoever waits for their outcome.
    dials: HashMap<PeerAddr, Vec<DialWaiter>>,
    /// IPs we were reached at: with our port, they are us.
    local_ips: HashSet<IpAddr>,
    /// Addresses that turned out to be ourselves.
    self_addrs: HashSet<PeerAddr>,
    subscribers: Vec<Subscriber>,
    supervisor: Addr<NodeSupervisor>,
    /// Why the current incarnation failed, until `restarting` reports it.
    failure: Option<String>,
    /// How many times this Registry has been restarted.
    incarnation: u32,
    /// Sessions that were live when the Registry restarted and have not registered again.
    rejoining: HashMap<SessionId, LiveSession>,
    /// The node gave up: everything is refused.
    retired: bool,
    /// Quitting: no new chats or dials, but chats in flight may still finish.
    draining: bool,
    /// Quitting, grace over: no new sessions either.
    closing: bool,
    outbox_empty_waiters: Vec<oneshot::Sender<()>>,
    no_sessions_waiters: Vec<oneshot::Sender<()>>,
    retry: RetryPolicy,
    /// Peers with chats waiting and a reconnect scheduled.
    redials: HashMap<PeerAddr, Redial>,
    /// The data directory's files, if the node has one.
    store: Option<Store>,
    /// The last chats shown or delivered, oldest first.
    history: VecDeque<HistoryEntry>,
    /// Chats accepted in this turn, and the Session each goes to (see `deliver_soon`).
    to_deliver: Vec<(MessageId, SessionId)>,
}

impl Registry {
    /// A Registry for `me`; `store` and `recovered` come from the data directory, if any:
    /// its pending chats are queued again and its history marks chats already shown.
    pub fn new(
        me: LocalIdentity,
        config: &NodeConfig,
        supervisor: Addr<NodeSupervisor>,
        store: Option<Store>,
        recovered: Recovered,
    ) -> Self {
        let mut registry = Registry {
            me,
            timeouts: config.timeouts,
            write_buffer_bytes: config.write_buffer_bytes,
            peers: BTreeMap::new(),
            sessions: HashMap::new(),
            outbox: BTreeMap::new(),
            // Ids from a clock: a restarted node does not reuse the ids of its last run.
            next_message_id: now_ms().saturating_mul(1000),
            seen: HashMap::new(),
            dials: HashMap::new(),
            local_ips: HashSet::new(),
            self_addrs: HashSet::new(),
            subscribers: Vec::new(),
            supervisor,
            failure: None,
            incarnation: 0,
            rejoining: HashMap::new(),
            retired: false,
            draining: false,
            closing: false,
            outbox_empty_waiters: Vec::new(),
            no_sessions_waiters: Vec::new(),
            retry: config.retry,
            redials: HashMap::new(),
            store,
            history: VecDeque::new(),
            to_deliver: Vec::new(),
        };
        registry.recover(recovered);
        registry
    }

    fn recover(&mut self, recovered: Recovered) {
        let now = Instant::now();
        for chat in recovered.outbox {
            let Ok(to) = chat.to.parse::<PeerAddr>() else {
                tracing::warn!(
                    "outbox entry {} has a bad address {:?}; dropped",
                    chat.id,
                    chat.to
                );
                continue;
            };
            self.next_message_id = self.next_message_id.max(chat.id);
            self.peers.entry(to).or_default();
            self.outbox.insert(
                chat.id,
                Box::new(Outgoing {
                    to,
                    text: chat.text,
                    sent_at_ms: chat.sent_at_ms,
                    on_session: None,
                    handed_at: None,
                    queued_at: now,
                    last_error: None,
                }),
            );
        }
        for entry in recovered.history {
            if let HistoryEntry::In { node_id, id, .. } = &entry {
                self.seen.entry(*node_id).or_default().first_time(*id);
            }
            self.remember(entry);
        }
    }

    fn remember(&mut self, entry: HistoryEntry) {
        if self.history.len() == HISTORY_IN_MEMORY {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    /// Writes to the data directory; a full disk or a removed directory is reported, and
    /// the node goes on in memory.
    fn persist(&mut self, write: impl FnOnce(&mut Store) -> std::io::Result<()>) {
        if let Some(store) = self.store.as_mut() {
            if let Err(err) = write(store) {
                tracing::error!("cannot write to {}: {err}", store.dir().display());
            }
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        tracing::debug!(?event, "event");
        // A copy for each subscriber but the last, which gets the event itself.
        let last = self.subscribers.len().saturating_sub(1);
        let mut index = 0;
        let mut event = Some(event);
        self.subscribers.retain(|subscriber| {
            let copy = if index == last {
                event.take()
            } else {
                event.clone()
            };
            index += 1;
            copy.is_some_and(|event| subscriber.deliver(event))
        });
    }

    fn is_self(&self, addr: &PeerAddr) -> bool {
        if self.self_addrs.contains(addr) {
            return true;
        }
        addr.port() == self.me.listen_port
            && (addr.ip().is_loopback()
                || addr.ip().is_unspecified()
                || addr.ip() == self.me.bind
                || self.local_ips.contains(&addr.ip()))
    }

    fn name_of(&self, peer: &PeerAddr) -> String {
        self.peers
            .get(peer)
            .and_then(|record| record.name.clone())
            .unwrap_or_default()
    }

    fn session_for(&self, peer: &PeerAddr) -> Option<(SessionId, &LiveSession)> {
        let id = self.peers.get(peer)?.session?;
        self.sessions.get(&id).map(|live| (id, live))
    }

    fn template(&self, ctx: &Context<Self>) -> SessionTemplate {
        SessionTemplate {
            registry: ctx.address(),
            me: self.me.clone(),
            timeouts: self.timeouts,
            write_buffer_bytes: self.write_buffer_bytes,
        }
    }

    /// Starts connecting to `to` unless a dial is already under way; `waiter` learns the end.
    fn dial(&mut self, to: PeerAddr, waiter: Option<DialWaiter>, ctx: &mut Context<Self>) {
        let first = !self.dials.contains_key(&to);
        let waiters = self.dials.entry(to).or_default();
        waiters.extend(waiter);
        if !first {
            return;
        }
        self.peers.entry(to).or_default();
        let limit = self.timeouts.connect;
        let connect = async move {
            actix_rt::time::timeout(limit, TcpStream::connect(to.socket_addr())).await
        };
        ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| {
            let stream = match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return act.dial_failed(to, connect_error(err), ctx),
                Err(_) => return act.dial_failed(to, ConnectError::TimedOut(limit), ctx),
            };
            let template = act.template(ctx);
            if let Err(err) = Session::start(stream, Direction::Outbound { dialed: to }, template) {
                act.dial_failed(to, connect_error(err), ctx);
            }
            // Otherwise the dial ends when that Session registers or closes.
        }));
    }

    fn dial_failed(&mut self, to: PeerAddr, error: ConnectError, ctx: &mut Context<Self>) {
        tracing::info!(peer = %to, "connect failed: {error}");
        for waiter in self.dials.remove(&to).unwrap_or_default() {
            let _ = waiter.send(Err(error.clone()));
        }
        if self.session_for(&to).is_none() {
            self.retry_later(to, error.to_string(), ctx);
        }
    }

    /// Chats wait for `to`, which cannot be reached now: try again after a backoff.
    fn retry_later(&mut self, to: PeerAddr, reason: String, ctx: &mut Context<Self>) {
        let mut waiting = 0;
        for out in self.outbox.values_mut().filter(|out| out.to == to) {
            out.last_error = Some(reason.clone());
            waiting += 1;
        }
        if waiting == 0 || self.draining || self.dials.contains_key(&to) {
            return;
        }
        let attempt = self.redials.remove(&to).map_or(0, |r| {
            ctx.cancel_future(r.timer);
            r.attempt + 1
        });
        let retry_in = self.retry.backoff(
            attempt,
            self.next_message_id ^ u64::from(to.port()) ^ now_ms(),
        );
        let timer = ctx.run_later(retry_in, move |act, ctx| {
            let still_waiting = act.outbox.values().any(|out| out.to == to);
            if still_waiting && act.session_for(&to).is_none() && !act.draining {
                act.dial(to, None, ctx);
            }
        });
        self.redials.insert(to, Redial { attempt, timer });
        self.emit(NodeEvent::DeliveryDelayed {
            to,
            waiting,
            reason,
            retry_in,
        });
    }

    fn dial_succeeded(&mut self, to: PeerAddr) {
        for waiter in self.dials.remove(&to).unwrap_or_default() {
            let _ = waiter.send(Ok(ConnectOutcome::Connected));
        }
    }

    /// Reports every outbox entry matching `which` as failed and drops it.
    fn fail_where(&mut self, which: impl Fn(&Outgoing) -> bool, reason: &str) {
        let failed: Vec<MessageId> = self
            .outbox
            .iter()
            .filter(|(_, out)| which(out))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.fail_one(id, reason);
        }
        self.check_outbox_empty();
    }

    fn fail_one(&mut self, id: MessageId, reason: &str) {
        if let Some(out) = self.outbox.remove(&id) {
            self.persist(|store| store.done(id, &format!("failed: {reason}")));
            self.emit(NodeEvent::DeliveryFailed {
                to: out.to,
                id,
                text: out.text,
                reason: reason.to_string(),
            });
        }
    }

    fn check_outbox_empty(&mut self) {
        if self.outbox.is_empty() {
            for waiter in self.outbox_empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Hands every outbox entry for `peer` that is not on a live Session to `session`, in one
    /// `Deliver`.
    fn flush_outbox(&mut self, peer: PeerAddr, session: SessionId) {
        let Some(live) = self.sessions.get(&session) else {
            return;
        };
        let mut chats = Vec::new();
        for (id, out) in self.outbox.iter_mut() {
            let on_live = out
                .on_session
                .is_some_and(|s| s == session || self.sessions.contains_key(&s));
            if out.to == peer && !on_live {
                out.on_session = Some(session);
                out.handed_at = Some(Instant::now());
                chats.push(out.chat(*id));
            }
        }
        if !chats.is_empty() {
            tell(Role::Registry, &live.addr, Deliver { chats });
        }
    }

    /// Chat `id`, accepted in this turn, goes to `session` in one `Deliver` with every other
    /// chat accepted for it before the Registry's mailbox runs dry: one mailbox hop per batch.
    fn deliver_soon(&mut self, id: MessageId, session: SessionId, ctx: &mut Context<Self>) {
        if self.to_deliver.is_empty() {
            // A spawned future runs once the messages waiting in the mailbox are handled.
            ctx.spawn(fut::ready(()).map(|_, act: &mut Self, _| act.deliver_accepted()));
        }
        self.to_deliver.push((id, session));
    }

    /// Sends the chats `deliver_soon` collected, one `Deliver` per Session, each in order.
    fn deliver_accepted(&mut self) {
        let mut batches: Vec<(SessionId, Vec<Chat>)> = Vec::new();
        for (id, session) in std::mem::take(&mut self.to_deliver) {
            // Failed, acked or moved to another Session meanwhile: nothing to send here.
            let Some(out) = self.outbox.get(&id) else {
                continue;
            };
            if out.on_session != Some(session) {
                continue;
            }
            let chat = out.chat(id);
            match batches.iter_mut().find(|(s, _)| *s == session) {
                Some((_, chats)) => chats.push(chat),
                None => batches.push((session, vec![chat])),
            }
        }
        for (session, chats) in batches {
            if let Some(live) = self.sessions.get(&session) {
                tell(Role::Registry, &live.addr, Deliver { chats });
            }
        }
    }

    /// Says bye to the peer's Session; the peer is disconnected from now on.
    fn disconnect(&mut self, peer: PeerAddr, reason: &str) -> bool {
        let Some(record) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(session_id) = record.session.take() else {
            return false;
        };
        if let Some(live) = self.sessions.get(&session_id) {
            tell(
                Role::Registry,
                &live.addr,
                Close {
                    reason: reason.to_string(),
                },
            );
        }
        let name = self.name_of(&peer);
        self.emit(NodeEvent::PeerDisconnected {
            peer,
            name,
            reason: reason.to_string(),
        });
        true
    }

    /// What a `peers` frame to `for_peer` lists: at most [`PEERS_PER_FRAME`] peers,
    /// connected ones first. Bounded so that the frame always fits its 64 KiB limit and a
    /// node with thousands of peers does not send each newcomer all of them.
    fn known_peers_for(&self, for_peer: PeerAddr) -> Vec<PeerEntry> {
        // A loopback address means nothing to a peer on another host.
        let remote_peer = !for_peer.ip().is_loopback();
        let worth_telling =
            |addr: &PeerAddr| *addr != for_peer && !(remote_peer && addr.ip().is_loopback());
        let connected = self
            .peers
            .iter()
            .filter(|(_, record)| record.session.is_some());
        let others = self
            .peers
            .iter()
            .filter(|(_, record)| record.session.is_none());
        connected
            .chain(others)
            .filter(|(addr, _)| worth_telling(addr))
            .take(PEERS_PER_FRAME)
            .map(|(addr, record)| PeerEntry {
                addr: addr.to_string(),
                name: record.name.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// Which of two connections to the same node survives: the one opened by the node with
    /// the lower id. Both ends compute the same answer, so both keep the same connection.
    fn initiator(&self, outbound: bool, peer_node: NodeId) -> NodeId {
        if outbound {
            self.me.node_id
        } else {
            peer_node
        }
    }

    fn after_restart(&mut self, ctx: &mut Context<Self>) {
        for live in self.rejoining.values() {
            tell(Role::Registry, &live.addr, Reannounce);
        }
        // Dials in flight died with the old incarnation; their waiters still wait.
        let pending: Vec<PeerAddr> = self.dials.keys().copied().collect();
        for to in pending {
            let waiters = self.dials.remove(&to).unwrap_or_default();
            let mut waiters = waiters.into_iter();
            self.dial(to, waiters.next(), ctx);
            self.dials.entry(to).or_default().extend(waiters);
        }
    }

    /// Runs every tick: a chat without an ack for the ack timeout is handed to its Session
    /// again; a chat that waited longer than the retry budget is given up.
    fn check_outbox(&mut self) {
        let now = Instant::now();
        let budget = self.retry.give_up_after;
        let expired: Vec<(MessageId, String)> = self
            .outbox
            .iter()
            .filter(|(_, out)| now.duration_since(out.queued_at) >= budget)
            .map(|(id, out)| {
                let why = out.last_error.as_deref().unwrap_or("no ack");
                (*id, format!("gave up after {}: {why}", human(budget)))
            })
            .collect();
        for (id, reason) in expired {
            self.fail_one(id, &reason);
        }
        self.check_outbox_empty();
        let ack_timeout = self.timeouts.ack;
        let mut stale_peers = Vec::new();
        for out in self.outbox.values_mut() {
            if out
                .handed_at
                .is_some_and(|t| now.duration_since(t) >= ack_timeout)
            {
                out.on_session = None;
                out.last_error = Some(format!("no ack within {}", human(ack_timeout)));
                stale_peers.push(out.to);
            }
        }
        stale_peers.dedup();
        for peer in stale_peers {
            if let Some((session, _)) = self.session_for(&peer) {
                self.flush_outbox(peer, session);
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Peers can flood us with frames; a bounded mailbox makes their Sessions wait.
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(Duration::from_millis(250), |act, _| act.check_outbox());
        if self.incarnation == 0 {
            // Chats recovered from the data directory go out as soon as their peers answer.
            let mut waiting: Vec<PeerAddr> = self.outbox.values().map(|out| out.to).collect();
            waiting.dedup();
            for to in waiting {
                self.dial(to, None, ctx);
            }
        }
        if self.incarnation > 0 {
            self.after_restart(ctx);
            tell(
                Role::Registry,
                &self.supervisor,
                ChildRestarted {
                    child: ChildName::Registry,
                },
            );
        }
    }
}

/// What survives a restart and what is rebuilt. Kept: the plain records whose loss would lose
/// messages or knowledge (peers, outbox, shown-chat record, subscribers). Rebuilt: the links
/// to live Sessions, which are asked to register again, and the dials, which were futures of
/// the old incarnation and are started again.
impl Supervised for Registry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let reason = self.failure.take().unwrap_or_else(|| "stopped".to_string());
        tell(
            Role::Registry,
            &self.supervisor,
            ChildFailed {
                child: ChildName::Registry,
                reason,
            },
        );
        self.incarnation += 1;
        // Accepted but never handed to a Session (the flush died with the old context):
        // they go out when their Session rejoins.
        for (id, _) in std::mem::take(&mut self.to_deliver) {
            if let Some(out) = self.outbox.get_mut(&id) {
                out.on_session = None;
                out.handed_at = None;
            }
        }
        for record in self.peers.values_mut() {
            record.session = None;
        }
        let live: Vec<(SessionId, LiveSession)> = self.sessions.drain().collect();
        self.rejoining.extend(live);
    }
}

impl Traced for Registry {
    const ROLE: Role = Role::Registry;
}

impl SupervisedChild for Registry {
    const NAME: ChildName = ChildName::Registry;

    fn failure(&mut self) -> &mut Option<String> {
        &mut self.failure
    }
}

/// Message handling. Every handler runs through `guarded`, so a panic in one becomes a
/// supervised restart; the bodies live here.
impl Registry {
    fn on_subscribe(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(msg.0);
    }

    fn on_register(
        &mut self,
        msg: Register,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<PeerEntry>, String> {
        self.local_ips.insert(msg.local_ip);
        let rejoined = self.rejoining.remove(&msg.session_id).is_some();
        if self.retired {
            return Err("node failed".into());
        }
        if msg.node_id == self.me.node_id {
            self.self_addrs.insert(msg.peer);
            if let Some(dialed) = msg.dialed {
                self.self_addrs.insert(dialed);
                self.peers.remove(&dialed);
                for waiter in self.dials.remove(&dialed).unwrap_or_default() {
                    let _ = waiter.send(Err(ConnectError::SelfAddress));
                }
                self.fail_where(|out| out.to == dialed, "that address is this node itself");
            }
            return Err("connected to itself".into());
        }
        if self.closing {
            return Err("node is shutting down".into());
        }
        // An existing connection to the same node, or to whoever had this address before.
        let rival = self
            .sessions
            .iter()
            .find(|(_, live)| live.node_id == msg.node_id || live.peer == msg.peer)
            .filter(|(id, _)| self.peers.values().any(|r| r.session == Some(**id)))
            .map(|(id, live)| {
                (
                    *id,
                    live.node_id,
                    live.outbound,
                    live.addr.clone(),
                    live.peer,
                )
            });
        if let Some((rival_id, rival_node, rival_outbound, rival_addr, rival_peer)) = rival {
            let same_node = rival_node == msg.node_id;
            let keep_rival = same_node
                && self.initiator(rival_outbound, rival_node)
                    <= self.initiator(msg.outbound, msg.node_id);
            if keep_rival {
                // This node already has its one connection to that peer.
                if let Some(dialed) = msg.dialed {
                    for waiter in self.dials.remove(&dialed).unwrap_or_default() {
                        let _ = waiter.send(Ok(ConnectOutcome::AlreadyConnected));
                    }
                }
                return Err("duplicate connection".into());
            }
            let reason = if same_node {
                "duplicate connection"
            } else {
                "replaced by a new connection from the same address"
            };
            tell(
                Role::Registry,
                &rival_addr,
                Close {
                    reason: reason.into(),
                },
            );
            if let Some(record) = self.peers.get_mut(&rival_peer) {
                if record.session == Some(rival_id) {
                    record.session = None;
                }
            }
            self.sessions.remove(&rival_id);
            // Chats on the replaced connection go out again: on the new one if they are
            // for the same address (flushed below), else once their address is reached.
            for out in self.outbox.values_mut() {
                if out.on_session == Some(rival_id) {
                    out.on_session = None;
                }
            }
            if rival_peer != msg.peer {
                self.retry_later(rival_peer, "connection replaced".into(), ctx);
            }
        }
        self.sessions.insert(
            msg.session_id,
            LiveSession {
                addr: msg.session.clone(),
                peer: msg.peer,
                node_id: msg.node_id,
                outbound: msg.outbound,
            },
        );
        let record = self.peers.entry(msg.peer).or_default();
        let was_connected = record.session.is_some();
        record.session = Some(msg.session_id);
        record.node_id = Some(msg.node_id);
        record.name = Some(msg.name.clone());
        record.last_seen = Some(SystemTime::now());
        self.dial_succeeded(msg.peer);
        if let Some(dialed) = msg.dialed.filter(|d| *d != msg.peer) {
            self.dial_succeeded(dialed);
        }
        // A Session rejoining a restarted Registry is no news to anyone.
        let quiet_rejoin = rejoined && msg.rejoin;
        if !was_connected && !quiet_rejoin {
            self.emit(NodeEvent::PeerConnected {
                peer: msg.peer,
                name: msg.name,
                outbound: msg.outbound,
            });
        }
        for addr in [Some(msg.peer), msg.dialed].into_iter().flatten() {
            if let Some(redial) = self.redials.remove(&addr) {
                ctx.cancel_future(redial.timer);
            }
        }
        self.flush_outbox(msg.peer, msg.session_id);
        Ok(self.known_peers_for(msg.peer))
    }

    fn on_session_closed(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        tracing::debug!(session = msg.session_id, remote = %msg.remote, "session closed: {}", msg.reason);
        if let Some(orphan) = self.rejoining.remove(&msg.session_id) {
            // It was connected before a Registry restart and ended before it could rejoin:
            // handled below like any live session whose peer was connected.
            if let Some(record) = self.peers.get_mut(&orphan.peer) {
                if record.session.is_none() {
                    record.session = Some(msg.session_id);
                }
            }
            self.sessions.insert(msg.session_id, orphan);
        }
        let live = self.sessions.remove(&msg.session_id);
        if let Some(live) = &live {
            let current = self
                .peers
                .get(&live.peer)
                .is_some_and(|r| r.session == Some(msg.session_id));
            if current {
                if let Some(record) = self.peers.get_mut(&live.peer) {
                    record.session = None;
                }
                let name = self.name_of(&live.peer);
                self.emit(NodeEvent::PeerDisconnected {
                    peer: live.peer,
                    name,
                    reason: msg.reason.clone(),
                });
            }
            // Chats that were on this connection go to its replacement, if there is one.
            let peer = live.peer;
            if let Some((replacement, _)) = self.session_for(&peer) {
                for out in self.outbox.values_mut() {
                    if out.on_session == Some(msg.session_id) {
                        out.on_session = None;
                    }
                }
                self.flush_outbox(peer, replacement);
            } else {
                // Kept, and sent again once the peer is back.
                for out in self.outbox.values_mut() {
                    if out.on_session == Some(msg.session_id) {
                        out.on_session = None;
                    }
                }
                let reason = format!("connection lost ({})", msg.reason);
                self.retry_later(peer, reason, ctx);
            }
        } else if msg.peer.is_none() {
            // Never registered: a failed handshake.
            if let Some(dialed) = msg.dialed {
                if self.dials.contains_key(&dialed) {
                    let error = ConnectError::Handshake(msg.reason.clone());
                    self.dial_failed(dialed, error, ctx);
                }
            } else if !msg.reason.starts_with("connection closed by peer") {
                self.emit(NodeEvent::ConnectionRefused {
                    remote: msg.remote,
                    reason: msg.reason.clone(),
                });
            }
        }
        if self.sessions.is_empty() {
            for waiter in self.no_sessions_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn on_incoming_chats(&mut self, msg: IncomingChats, _: &mut Context<Self>) {
        if let Some(record) = self.peers.get_mut(&msg.from) {
            record.last_seen = Some(SystemTime::now());
        }
        let name = self.name_of(&msg.from);
        let at_ms = now_ms();
        let mut acks = Vec::with_capacity(msg.chats.len());
        for chat in msg.chats {
            acks.push(chat.id);
            let seen = self.seen.entry(msg.node_id).or_default();
            if !seen.first_time(chat.id) {
                tracing::debug!(from = %msg.from, id = chat.id, "repeated chat acked again, not shown");
                continue;
            }
            // Recorded before it is shown: after a crash it is not shown again.
            let entry = HistoryEntry::In {
                at_ms,
                from: msg.from,
                name: name.clone(),
                node_id: msg.node_id,
                id: chat.id,
                text: chat.text.clone(),
            };
            self.persist(|store| store.history(&entry));
            self.remember(entry);
            self.emit(NodeEvent::ChatReceived {
                from: msg.from,
                name: name.clone(),
                id: chat.id,
                text: chat.text,
                sent_at_ms: chat.sent_at_ms,
            });
        }
        // Handed to the console: now, and only now, they are acked.
        tell(Role::Registry, &msg.session, AckChats { ids: acks });
    }

    fn on_acks_received(&mut self, msg: AcksReceived, _: &mut Context<Self>) {
        if let Some(record) = self.peers.get_mut(&msg.from) {
            record.last_seen = Some(SystemTime::now());
        }
        let at_ms = now_ms();
        for id in msg.ids {
            let ours = self.outbox.get(&id).is_some_and(|out| out.to == msg.from);
            let Some(out) = ours.then(|| self.outbox.remove(&id)).flatten() else {
                continue; // A repeat, or not for a chat of ours: nothing to do.
            };
            let entry = HistoryEntry::Out {
                at_ms,
                to: out.to,
                id,
                text: out.text.clone(),
            };
            self.persist(|store| {
                store.done(id, "delivered")?;
                store.history(&entry)
            });
            self.remember(entry);
            self.emit(NodeEvent::Delivered {
                to: msg.from,
                id,
                text: out.text,
            });
        }
        self.check_outbox_empty();
    }

    fn on_peers_learned(&mut self, msg: PeersLearned, _: &mut Context<Self>) {
        for entry in msg.peers {
            let Ok(addr) = entry.addr.parse::<PeerAddr>() else {
                tracing::info!(from = %msg.from, "ignoring peer entry with bad address {:?}", entry.addr);
                continue;
            };
            if self.is_self(&addr) {
                continue;
            }
            let name = (!entry.name.is_empty()).then_some(entry.name);
            match self.peers.get_mut(&addr) {
                Some(record) => {
                    if record.name.is_none() {
                        record.name = name;
                    }
                }
                None => {
                    self.peers.insert(
                        addr,
                        PeerRecord {
                            name: name.clone(),
                            ..PeerRecord::default()
                        },
                    );
                    self.emit(NodeEvent::PeerDiscovered {
                        peer: addr,
                        name: name.unwrap_or_default(),
                    });
                }
            }
        }
    }

    fn on_known_peers(
        &mut self,
        msg: KnownPeers,
        _: &mut Context<Self>,
    ) -> MessageResult<KnownPeers> {
        MessageResult(self.known_peers_for(msg.for_peer))
    }

    fn on_send_chat(
        &mut self,
        msg: SendChat,
        ctx: &mut Context<Self>,
    ) -> Result<MessageId, SendError> {
        self.check_sendable(&msg.to, std::slice::from_ref(&msg.text))?;
        let id = self.accept(msg.to, msg.text, ctx);
        self.route_accepted(msg.to, ctx);
        Ok(id)
    }

    fn on_send_chats(
        &mut self,
        msg: SendChats,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<MessageId>, SendError> {
        self.check_sendable(&msg.to, &msg.texts)?;
        let ids = msg
            .texts
            .into_iter()
            .map(|text| self.accept(msg.to, text, ctx))
            .collect();
        self.route_accepted(msg.to, ctx);
        Ok(ids)
    }

    /// Whether chats with these texts can be sent to `to` now.
    fn check_sendable(&self, to: &PeerAddr, texts: &[String]) -> Result<(), SendError> {
        if self.draining {
            return Err(SendError::ShuttingDown);
        }
        if self.is_self(to) {
            return Err(SendError::SelfAddress);
        }
        match texts.iter().find(|text| text.len() > MAX_TEXT_BYTES) {
            Some(text) => Err(SendError::TooLong { len: text.len() }),
            None => Ok(()),
        }
    }

    /// Puts a chat in the outbox (and on disk) and, if its peer is connected, on the way.
    fn accept(&mut self, to: PeerAddr, text: String, ctx: &mut Context<Self>) -> MessageId {
        self.next_message_id += 1;
        let id = self.next_message_id;
        let sent_at_ms = now_ms();
        // On disk before anyone is told it was accepted.
        if self.store.is_some() {
            let queued = QueuedChat {
                id,
                to: to.to_string(),
                text: text.clone(),
                sent_at_ms,
            };
            self.persist(|store| store.queued(&queued));
        }
        let session = self.session_for(&to).map(|(session, _)| session);
        let now = Instant::now();
        self.outbox.insert(
            id,
            Box::new(Outgoing {
                to,
                text,
                sent_at_ms,
                on_session: session,
                handed_at: session.map(|_| now),
                queued_at: now,
                last_error: None,
            }),
        );
        if let Some(session) = session {
            // Only this chat: the others for this peer are already on the session.
            self.deliver_soon(id, session, ctx);
        }
        id
    }

    /// After accepting chats for `to`: if it has no Session, get it one.
    fn route_accepted(&mut self, to: PeerAddr, ctx: &mut Context<Self>) {
        if self.session_for(&to).is_some()
            // Its Session is rejoining a restarted Registry: the chats go out when it has.
            || self.rejoining.values().any(|live| live.peer == to)
            // A reconnect is scheduled: the chats wait for it with the others.
            || self.redials.contains_key(&to)
        {
            return;
        }
        self.dial(to, None, ctx);
    }

    fn on_connect(
        &mut self,
        msg: Connect,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<ConnectOutcome, ConnectError>> {
        if self.draining {
            return Box::pin(async { Err(ConnectError::ShuttingDown) });
        }
        if self.is_self(&msg.to) {
            return Box::pin(async { Err(ConnectError::SelfAddress) });
        }
        if self.session_for(&msg.to).is_some() {
            return Box::pin(async { Ok(ConnectOutcome::AlreadyConnected) });
        }
        let (tx, rx) = oneshot::channel();
        self.dial(msg.to, Some(tx), ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(ConnectError::ShuttingDown)) })
    }

    fn on_connect_all(
        &mut self,
        _: ConnectAll,
        _: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ConnectAllReport> {
        let refreshes: Vec<_> = self
            .sessions
            .values()
            .map(|live| ask(Role::Registry, &live.addr, RefreshPeers))
            .collect();
        let refreshed = actix_rt::time::timeout(self.timeouts.peer_refresh, join_all(refreshes));
        Box::pin(refreshed.into_actor(self).then(|_, act, ctx| {
            let mut report = ConnectAllReport::default();
            let mut waits = Vec::new();
            let addrs: Vec<PeerAddr> = act.peers.keys().copied().collect();
            for addr in addrs {
                if act.is_self(&addr) {
                    continue;
                }
                if act.session_for(&addr).is_some() {
                    report.already_connected.push(addr);
                } else if !act.draining {
                    let (tx, rx) = oneshot::channel();
                    act.dial(addr, Some(tx), ctx);
                    waits.push(async move {
                        (addr, rx.await.unwrap_or(Err(ConnectError::ShuttingDown)))
                    });
                }
            }
            join_all(waits).into_actor(act).map(move |attempts, _, _| {
                report.attempts = attempts;
                report
            })
        }))
    }

    fn on_list_peers(&mut self, _: ListPeers, _: &mut Context<Self>) -> MessageResult<ListPeers> {
        let mut waiting: HashMap<PeerAddr, usize> = HashMap::new();
        for out in self.outbox.values() {
            *waiting.entry(out.to).or_default() += 1;
        }
        MessageResult(
            self.peers
                .iter()
                .map(|(addr, record)| PeerInfo {
                    addr: *addr,
                    name: record.name.clone(),
                    connected: record.session.is_some(),
                    last_seen: record.last_seen,
                    waiting: waiting.get(addr).copied().unwrap_or(0),
                })
                .collect(),
        )
    }

    fn on_disconnect(
        &mut self,
        msg: Disconnect,
        _: &mut Context<Self>,
    ) -> Result<(), NotConnected> {
        if self.disconnect(msg.peer, "disconnected by user") {
            Ok(())
        } else {
            Err(NotConnected(msg.peer))
        }
    }

    fn on_disconnect_all(&mut self, _: DisconnectAll, _: &mut Context<Self>) -> usize {
        let connected: Vec<PeerAddr> = self
            .peers
            .iter()
            .filter(|(_, r)| r.session.is_some())
            .map(|(a, _)| *a)
            .collect();
        connected
            .into_iter()
            .filter(|peer| self.disconnect(*peer, "disconnected by user"))
            .count()
    }

    fn on_shutdown(
        &mut self,
        msg: Shutdown,
        _: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ShutdownReport> {
        self.draining = true;
        let (acked_tx, acked_rx) = oneshot::channel();
        self.outbox_empty_waiters.push(acked_tx);
        self.check_outbox_empty();
        let drained = actix_rt::time::timeout(msg.grace, acked_rx);
        Box::pin(drained.into_actor(self).then(|_, act, _| {
            act.closing = true;
            let undelivered = act.outbox.len();
            // With a data directory they stay in the outbox file for the next start.
            let kept = act.store.is_some();
            if !kept {
                act.fail_where(|_| true, "node quit before the ack arrived");
            }
            // The connected peers' Sessions are told by `disconnect`; the others (replaced,
            // still in their handshake, rejoining) are told below.
            let told: HashSet<SessionId> = act
                .peers
                .values()
                .filter_map(|record| record.session)
                .collect();
            let connected: Vec<PeerAddr> = act.peers.keys().copied().collect();
            for peer in connected {
                act.disconnect(peer, "quit");
            }
            for (id, live) in act.sessions.iter().chain(act.rejoining.iter()) {
                if !told.contains(id) {
                    tell(
                        Role::Registry,
                        &live.addr,
                        Close {
                            reason: "quit".into(),
                        },
                    );
                }
            }
            let (closed_tx, closed_rx) = oneshot::channel();
            act.no_sessions_waiters.push(closed_tx);
            if act.sessions.is_empty() {
                for waiter in act.no_sessions_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
            actix_rt::time::timeout(Duration::from_secs(2), closed_rx)
                .into_actor(act)
                .map(move |_, _, _| ShutdownReport { undelivered, kept })
        }))
    }
}

impl Handler<Subscribe> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || (), |act, ctx| act.on_subscribe(msg, ctx))
    }
}

impl Handler<Register> for Registry {
    type Result = Result<Vec<PeerEntry>, String>;

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err("registry failed while registering; try again".into()),
            |act, ctx| act.on_register(msg, ctx),
        )
    }
}

impl Handler<SessionClosed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || (), |act, ctx| act.on_session_closed(msg, ctx))
    }
}

impl Handler<IncomingChats> for Registry {
    type Result = ();

    fn handle(&mut self, msg: IncomingChats, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || (), |act, ctx| act.on_incoming_chats(msg, ctx))
    }
}

impl Handler<AcksReceived> for Registry {
    type Result = ();

    fn handle(&mut self, msg: AcksReceived, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || (), |act, ctx| act.on_acks_received(msg, ctx))
    }
}

impl Handler<PeersLearned> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PeersLearned, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || (), |act, ctx| act.on_peers_learned(msg, ctx))
    }
}

impl Handler<KnownPeers> for Registry {
    type Result = MessageResult<KnownPeers>;

    fn handle(&mut self, msg: KnownPeers, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || MessageResult(Vec::new()),
            |act, ctx| act.on_known_peers(msg, ctx),
        )
    }
}

impl Handler<SendChat> for Registry {
    type Result = Result<MessageId, SendError>;

    fn handle(&mut self, msg: SendChat, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(SendError::RegistryFailed),
            |act, ctx| act.on_send_chat(msg, ctx),
        )
    }
}

impl Handler<SendChats> for Registry {
    type Result = Result<Vec<MessageId>, SendError>;

    fn handle(&mut self, msg: SendChats, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(SendError::RegistryFailed),
            |act, ctx| act.on_send_chats(msg, ctx),
        )
    }
}

impl Handler<Connect> for Registry {
    type Result = ResponseFuture<Result<ConnectOutcome, ConnectError>>;

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || -> Self::Result { Box::pin(async { Err(ConnectError::RegistryFailed) }) },
            |act, ctx| act.on_connect(msg, ctx),
        )
    }
}

impl Handler<ConnectAll> for Registry {
    type Result = ResponseActFuture<Self, ConnectAllReport>;

    fn handle(&mut self, msg: ConnectAll, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || -> Self::Result { Box::pin(actix::fut::ready(ConnectAllReport::default())) },
            |act, ctx| act.on_connect_all(msg, ctx),
        )
    }
}

impl Handler<ListPeers> for Registry {
    type Result = MessageResult<ListPeers>;

    fn handle(&mut self, msg: ListPeers, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || MessageResult(Vec::new()),
            |act, ctx| act.on_list_peers(msg, ctx),
        )
    }
}

impl Handler<Disconnect> for Registry {
    type Result = Result<(), NotConnected>;

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) -> Self::Result {
        let peer = msg.peer;
        guarded(
            self,
            ctx,
            move || Err(NotConnected(peer)),
            |act, ctx| act.on_disconnect(msg, ctx),
        )
    }
}

impl Handler<DisconnectAll> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: DisconnectAll, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, || 0, |act, ctx| act.on_disconnect_all(msg, ctx))
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseActFuture<Self, ShutdownReport>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || -> Self::Result { Box::pin(actix::fut::ready(ShutdownReport::default())) },
            |act, ctx| act.on_shutdown(msg, ctx),
        )
    }
}

impl Handler<History> for Registry {
    type Result = MessageResult<History>;

    fn handle(&mut self, msg: History, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || MessageResult(Vec::new()),
            |act, _| {
                let skip = act.history.len().saturating_sub(msg.limit);
                MessageResult(act.history.iter().skip(skip).cloned().collect())
            },
        )
    }
}

impl Handler<Publish> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        self.emit(msg.0);
    }
}

impl Handler<Retire> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Retire, _: &mut Context<Self>) {
        self.retired = true;
        self.draining = true;
        self.closing = true;
        let peers: Vec<PeerAddr> = self.peers.keys().copied().collect();
        for peer in peers {
            self.disconnect(peer, &msg.reason);
        }
        for live in self.sessions.values().chain(self.rejoining.values()) {
            tell(
                Role::Registry,
                &live.addr,
                Close {
                    reason: msg.reason.clone(),
                },
            );
        }
        if self.store.is_none() {
            self.fail_where(|_| true, &msg.reason);
        }
    }
}

impl Handler<Inject> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Inject, ctx: &mut Context<Self>) {
        guarded(self, ctx, || (), |act, ctx| suffer(act, ctx, msg.0))
    }
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
                    .session_for(&msg.peer)
                    .ok_or(InjectError::NotConnected(msg.peer))?;
                tell(Role::Registry, &live.addr, InjectSessionFault(msg.fault));
                Ok(())
            },
        )
    }
}

fn connect_error(err: std::io::Error) -> ConnectError {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        _ => ConnectError::Unreachable(err.to_string()),
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
