//! Registry: owns the peer set (every peer this node knows, which Session serves each connected
//! one), the outbox of chats waiting for an ack, and the record of chats already shown.
//! Sessions report to it; the Console and `Node` ask it; it dials peers and emits NodeEvents.
//!
//! This file is the actor's shell: its state, its lifecycle and what survives a restart. The
//! logic lives in plain structs beside it ([`outbox`], [`dialer`], [`peers`], [`inbox`]), and
//! each message sits with its handler: chats in `chats.rs`, Sessions registering and ending in
//! `sessions.rs`, connecting and disconnecting in `connections.rs`, subscribers, quitting and
//! faults in `lifecycle.rs`, peers found on the LAN in `discovery.rs`.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;

use crate::child::ChildName;
use crate::config::{LocalIdentity, NodeConfig, Timeouts};
use crate::events::{EventBatch, NodeEvent};
use crate::guarded_handler;
use crate::heartbeat::Heartbeat;
use crate::helpers::now_ms;
use crate::identity::DataDirLock;
use crate::limits::{Limits, WriteBudget};
use crate::nearby::NearbyPeer;
use crate::peer::{MessageId, PeerAddr, SessionId};
use crate::session::{Session, SessionTemplate};
use crate::store::{Recovered, Store};
use crate::supervision::{SupervisedChild, SupervisorLink};
use crate::trace::{tell, Role, Traced};

pub mod addresses;
mod chats;
mod classic;
mod connections;
pub mod dialer;
mod discovery;
mod forget;
pub mod inbox;
mod lifecycle;
mod local_hash;
pub mod outbox;
pub mod peers;
mod sessions;
pub mod trust;
mod whois;

pub use chats::{
    AcksReceived, History, IncomingChats, SendChat, SendChatToEach, SendChats, SendError,
};
pub use classic::{ClassicAttempted, ClassicIncoming, ClassicTurn, ListClassicPeers, SendClassic};
pub use connections::{
    Connect, ConnectAll, ConnectAllReport, ConnectError, ConnectOutcome, Disconnect, DisconnectAll,
    ListPeers, NotConnected, MAX_DIALS_AT_ONCE,
};
pub use discovery::{ConnectAnnounced, ListNearby, NearbyPeers};
pub use forget::{CancelWaiting, Forget, Forgotten, CANCELLED};
pub use lifecycle::{InjectConnection, Publish, Shutdown, ShutdownReport, Subscribe, Subscriber};
pub use peers::{TableKey, MAX_KNOWN_PEERS, PEERS_PER_FRAME};
pub use sessions::{KnownPeers, PeersLearned, Register, SessionClosed};
pub use trust::KeyChange;
pub use whois::{Trust, TrustError, Whois, WhoisAddress, WhoisReport};

use dialer::Dialer;
use inbox::Inbox;
use outbox::Outbox;
use peers::{LiveSession, PeerTable};
use trust::{Expectation, Pins};

/// Where the node is in its life; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Taking chats, dials and connections.
    Running,
    /// Quitting: no new chats or dials, but chats in flight may still finish.
    Draining,
    /// Quitting, grace over: no new Sessions either.
    Closing,
    /// The node gave up after too many failures: everything is refused.
    Retired,
}

/// How the Registry reaches a Session it keeps in its peer table: its address. A weak
/// address made strong for each message cost two small allocations, their frees and five
/// atomic operations per `Deliver` (one per chat in a fan-out: docs/performance.md); held
/// strong it is 16 bytes more in the entry and about 96 bytes of its own per session. A
/// Session lives by its socket and its timers, not by being addressed, and one that has
/// stopped takes no more messages either way.
pub(crate) type SessionHandle = Addr<Session>;

impl LiveSession<SessionHandle> {
    /// Its address, while it runs.
    pub(crate) fn addr(&self) -> Option<Addr<Session>> {
        self.handle.connected().then(|| self.handle.clone())
    }

    /// Sends it `message` (traced), unless it has stopped: a trace line only for a message
    /// that goes somewhere.
    pub(crate) fn tell<M>(&self, message: M)
    where
        Session: Handler<M>,
        M: Message + Send + std::fmt::Debug + 'static,
        M::Result: Send,
    {
        tell_session(&self.handle, message);
    }
}

/// Sends a Session `message` (traced), unless it has stopped: a trace line only for a
/// message that goes somewhere.
pub(crate) fn tell_session<M>(session: &SessionHandle, message: M)
where
    Session: Handler<M>,
    M: Message + Send + std::fmt::Debug + 'static,
    M::Result: Send,
{
    if session.connected() {
        tell(Role::Registry, session, message);
    }
}

/// The Registry actor (see the module docs).
pub struct Registry {
    me: LocalIdentity,
    timeouts: Timeouts,
    write_buffer_bytes: usize,
    /// Budgets per peer, handed to the Sessions it starts.
    limits: Limits,
    /// The node's write budget, shared by every Session's writer.
    write_budget: Arc<WriteBudget>,
    /// The node's heartbeat, for the Sessions this Registry dials.
    heartbeat: Heartbeat,
    supervisor: SupervisorLink,
    phase: Phase,
    peers: PeerTable<SessionHandle>,
    outbox: Outbox,
    next_message_id: MessageId,
    inbox: Inbox,
    dialer: Dialer,
    subscribers: Vec<Subscriber>,
    /// The data directory's files, if the node has one.
    store: Option<Store>,
    /// Our chats whose save to the outbox file failed (reported `NotSaved`): never claimed
    /// kept. Bounded by the outbox: an id leaves when its chat does.
    unsaved: HashSet<MessageId>,
    /// The last write to the data directory failed and was reported: the next failures are
    /// not, until a write works again.
    storage_failing: bool,
    /// The data directory's lock, held until the node has shut down (or given up), so that
    /// no second node uses the directory meanwhile.
    data_dir_lock: Option<DataDirLock>,
    /// Chats accepted in this turn, and the Session each goes to (see `deliver_soon`).
    to_deliver: Vec<(MessageId, SessionId, PeerAddr)>,
    /// The task that sends this incarnation its `Tick`s; stopped when replaced or dropped.
    ticker: Option<Ticker>,
    outbox_empty_waiters: Vec<oneshot::Sender<()>>,
    no_sessions_waiters: Vec<oneshot::Sender<()>>,
    /// Why the current incarnation failed, until `restarting` reports it.
    failure: Option<String>,
    /// How many times this Registry has been restarted.
    incarnation: u32,
    /// Peers announced on the LAN, from the Discovery actor (registry/discovery.rs).
    nearby: Vec<NearbyPeer>,
    /// Classic peers and our chats to them (registry/classic.rs).
    classic: classic::Classic,
    /// Pinned keys and key changes waiting for `/trust` (registry/trust.rs).
    pins: Pins,
    /// The key each dial under way must prove, and why (registry/connections.rs).
    expecting: HashMap<PeerAddr, Expectation>,
}

impl Registry {
    /// A Registry for `me`; `store` and `recovered` come from the data directory, if any:
    /// its pending chats are queued again and its history marks chats already shown. The
    /// Sessions it dials join `heartbeat`, the node's.
    pub fn new(
        me: LocalIdentity,
        config: &NodeConfig,
        supervisor: SupervisorLink,
        store: Option<Store>,
        recovered: Recovered,
        heartbeat: Heartbeat,
    ) -> Self {
        let pins = Pins::load(store.as_ref().map(|store| store.dir()));
        let mut registry = Registry {
            peers: PeerTable::new(me.keys.public(), me.listen_port, me.bind),
            me,
            timeouts: config.timeouts,
            write_buffer_bytes: config.write_buffer_bytes,
            limits: config.limits,
            write_budget: Arc::new(WriteBudget::new(config.limits.max_write_buffers)),
            heartbeat,
            supervisor,
            phase: Phase::Running,
            outbox: Outbox::new(config.timeouts.ack, config.retry.give_up_after),
            // Ids from a clock: a restarted node does not reuse the ids of its last run.
            next_message_id: now_ms().saturating_mul(1000),
            inbox: Inbox::new(config.limits.seen_per_sender, config.limits.seen_total),
            dialer: Dialer::new(config.retry),
            subscribers: Vec::new(),
            store,
            data_dir_lock: None,
            unsaved: HashSet::new(),
            storage_failing: false,
            to_deliver: Vec::new(),
            ticker: None,
            outbox_empty_waiters: Vec::new(),
            no_sessions_waiters: Vec::new(),
            failure: None,
            incarnation: 0,
            nearby: Vec::new(),
            classic: classic::Classic::new(config.classic),
            pins,
            expecting: HashMap::new(),
        };
        registry.recover(recovered);
        registry
    }

    /// Holds the data directory's lock until the node shuts down.
    pub fn holding(mut self, lock: Option<DataDirLock>) -> Self {
        self.data_dir_lock = lock;
        self
    }

    /// Shares the node's write budget (the Listener's Sessions count in the same one).
    pub fn with_write_budget(mut self, budget: Arc<WriteBudget>) -> Self {
        self.write_budget = budget;
        self
    }

    /// The node has stopped using its data directory: another may take it.
    fn let_go_of_data_dir(&mut self) {
        self.store = None;
        self.data_dir_lock = None;
    }

    fn recover(&mut self, recovered: Recovered) {
        let now = Instant::now();
        let mut outbox = recovered.outbox;
        // The outbox keeps each peer's chats in id order.
        outbox.sort_by_key(|chat| chat.id);
        for chat in outbox {
            let Ok(to) = chat.to.parse::<PeerAddr>() else {
                tracing::warn!(
                    "outbox entry {} has a bad address {:?}; dropped",
                    chat.id,
                    chat.to
                );
                continue;
            };
            self.next_message_id = self.next_message_id.max(chat.id);
            self.peers.know(to);
            self.outbox
                .insert(chat.id, to, chat.text, chat.sent_at_ms, now);
        }
        self.inbox.recover(recovered.history);
    }

    /// Writes to the data directory; a full disk or a removed directory is reported on the
    /// console once (not per chat, until a write works again), and the node goes on in memory.
    fn persist(&mut self, write: impl FnOnce(&mut Store) -> std::io::Result<()>) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        match write(store) {
            Ok(()) => self.storage_failing = false,
            Err(err) => {
                let error = format!("{}: {err}", store.dir().display());
                tracing::error!("cannot write to {error}");
                if !std::mem::replace(&mut self.storage_failing, true) {
                    self.emit(NodeEvent::StorageFailed { error });
                }
            }
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        self.emit_all(smallvec::smallvec![event]);
    }

    /// Publishes events in order; a display gets them all in one message (the chats of one
    /// `IncomingChats`: a mailbox hop per batch, not per chat).
    fn emit_all(&mut self, events: EventBatch) {
        if events.is_empty() {
            return;
        }
        for event in &events {
            tracing::debug!(?event, "event");
        }
        // A copy for each subscriber but the last, which gets the events themselves.
        let last = self.subscribers.len().saturating_sub(1);
        let mut index = 0;
        let mut events = Some(events);
        self.subscribers.retain(|subscriber| {
            let copy = if index == last {
                events.take()
            } else {
                events.clone()
            };
            index += 1;
            copy.is_some_and(|events| subscriber.deliver(events))
        });
    }

    /// Quitting or retired: no new chats or dials.
    fn draining(&self) -> bool {
        self.phase >= Phase::Draining
    }

    fn template(&self, ctx: &Context<Self>) -> SessionTemplate {
        SessionTemplate {
            registry: ctx.address(),
            me: self.me.clone(),
            timeouts: self.timeouts,
            write_buffer_bytes: self.write_buffer_bytes,
            limits: self.limits,
            write_budget: self.write_budget.clone(),
            heartbeat: self.heartbeat.clone(),
        }
    }

    fn no_sessions_left(&mut self) {
        if !self.peers.has_sessions() {
            for waiter in self.no_sessions_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Peers can flood us with frames; a bounded mailbox makes their Sessions wait.
        ctx.set_mailbox_capacity(1024);
        // Replacing the last incarnation's ticker stops it.
        self.ticker = Some(Ticker::start(ctx.address().downgrade(), TICK));
        ctx.spawn(chats::EndOfTurn);
        if self.incarnation == 0 {
            // Chats recovered from the data directory go out as soon as their peers answer.
            for to in self.outbox.peers() {
                self.dial(to, None, ctx);
            }
        } else {
            self.after_restart(ctx);
            self.report_restart();
        }
    }
}

/// How often the outbox is checked for chats to hand again or give up.
const TICK: Duration = Duration::from_millis(250);

/// Check the outbox (`check_outbox`); sent every `TICK` by the Registry's `Ticker`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Tick;

guarded_handler!(Registry, Tick, |act, _, _| act.check_outbox());

/// A task of its own that sends the Registry a `Tick` every period, until dropped or the
/// Registry is gone. Not actix's `run_interval`: an actor polls every item it has spawned at
/// every turn, so an interval polled its timer once per message the Registry handled (about
/// 110 instructions each, two or more per chat sent: docs/performance.md, fan-out).
struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    fn start(registry: actix::WeakAddr<Registry>, period: Duration) -> Self {
        Ticker(actix::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.do_send(Tick);
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What survives a restart, and what is rebuilt. A restart keeps this struct and runs
/// `restarting`, then `started` in a new context.
///
/// Kept: the records whose loss would lose messages or knowledge: the peer table's peers,
/// the outbox, the inbox (shown chats, history), the subscribers, the store, the phase, the
/// message id counter, the dials' waiters.
///
/// Rebuilt: the links to live Sessions, which are asked to register again (`Reannounce`;
/// until they do they are "rejoining"); the dials, whose futures died with the old context
/// and are started again (`after_restart`); the redials planned, whose timers died too: those
/// peers are dialed at once (the backoff starts over); chats accepted in the failed turn but
/// never handed over, which go out when their Session has rejoined. The outbox's deadlines
/// are instants, not timers: the new incarnation's tick finds them as they were.
impl Supervised for Registry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.report_failure();
        self.incarnation += 1;
        for (id, _, _) in std::mem::take(&mut self.to_deliver) {
            self.outbox.unhand(id);
        }
        self.peers.restart();
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

    fn supervisor(&self) -> &SupervisorLink {
        &self.supervisor
    }
}
