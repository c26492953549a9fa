//! `Node`: starts one peer's actors (Registry, Listener, Discovery) and is the handle that a console,
//! a test or a library user drives it with. Every method is a message to the Registry.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::oneshot;
use tokio::net::TcpListener;

use crate::child::ChildName;
use crate::config::{LocalIdentity, NodeConfig};
use crate::discovery::{self, Discovery};
use crate::events::NodeEvent;
use crate::events::{EventSink, EventStream};
use crate::events::{NodeEvents, WhenShown};
use crate::faults::{Fault, Inject, InjectError};
use crate::heartbeat::Heartbeat;
use crate::identity::{Identity, IdentityError};
use crate::key::{Fingerprint, PeerKey};
use crate::limits::WriteBudget;
use crate::listener::{self, Listener};
use crate::nearby::NearbyPeer;
use crate::noise::StaticKeypair;
use crate::peer::{MessageId, PeerAddr, PeerInfo};
use crate::reasons::cannot_listen;
use crate::registry::{
    Connect, ConnectAll, ConnectAllReport, ConnectAnnounced, ConnectError, ConnectOutcome,
    Disconnect, DisconnectAll, InjectConnection, ListNearby, ListPeers, NotConnected, Registry,
    SendChat, SendChatToEach, SendChats, SendError, Shutdown, ShutdownReport, Subscribe,
    Subscriber,
};
use crate::registry::{History, KeyChange, Trust, TrustError, Whois, WhoisReport};
use crate::session::SessionTemplate;
use crate::store::{HistoryEntry, Recovered, Store};
use crate::supervision::Retire;
use crate::supervision::SupervisorLink;
use crate::supervisor::{Adopt, NodeFailure, NodeSupervisor, WatchFailure};
use crate::trace::{ask, tell, Role};

mod classic;
mod forget;

/// Why a node did not start.
#[derive(Debug)]
pub enum StartError {
    /// The listening socket could not be bound (e.g. the port is in use).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The node's identity could not be had: its data directory is used by another node,
    /// its key file is corrupt or exposed, ... (the message says what to do).
    Identity(IdentityError),
    /// The data directory could not be created, read or written.
    DataDir {
        /// The directory given with `--data-dir`.
        dir: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { addr, source } => f.write_str(&cannot_listen(*addr, source)),
            StartError::Identity(err) => write!(f, "{err}"),
            StartError::DataDir { dir, source } => {
                write!(f, "cannot use data directory {}: {source}", dir.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// The node stopped before it could answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStopped;

impl fmt::Display for NodeStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the node has stopped")
    }
}

impl std::error::Error for NodeStopped {}

/// A running peer. Cheap to clone; all clones drive the same actors.
#[derive(Clone)]
pub struct Node {
    registry: Addr<Registry>,
    listener: Addr<Listener>,
    /// Present while the node takes part in LAN discovery.
    discovery: Option<Addr<Discovery>>,
    supervisor: Addr<NodeSupervisor>,
    /// How long quitting waits for acks in flight.
    quit_grace: Duration,
    /// Who calls through this handle, for the trace (`Node`, or `Console` for its clone).
    caller: Role,
    /// Problems found reading the data directory (skipped lines), to show the user.
    warnings: Vec<String>,
    listen_addr: SocketAddr,
    key: PeerKey,
    name: String,
}

impl Node {
    /// Takes the node's identity (its data directory's key, locked; a key file of its own;
    /// or a new key), binds the port and starts the actors on the current actix system.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        let (identity, key_warning) = take_identity(&config)?;
        let (keys, lock) = identity.into_parts();
        let addr = SocketAddr::new(config.bind, config.port);
        let (socket, listen_addr) = bind_port(addr)?;
        let (store, recovered) = open_store(&config)?;
        let mut warnings = recovered.warnings.clone();
        warnings.extend(key_warning);
        let key = keys.public();
        let me = local_identity(keys, &config, listen_addr);
        // The supervision tree: the root first, then its children, which report to it.
        let supervisor = NodeSupervisor::new(config.restarts).start();
        // One budget for the writers of every Session, dialed or accepted, and one heartbeat.
        let write_budget = Arc::new(WriteBudget::new(config.limits.max_write_buffers));
        let heartbeat = Heartbeat::start(&config.timeouts);
        let registry = {
            let (me, config, link) = (me.clone(), config.clone(), SupervisorLink::to(&supervisor));
            let (budget, heartbeat) = (write_budget.clone(), heartbeat.clone());
            Supervisor::start(move |_| {
                Registry::new(me, &config, link, store, recovered, heartbeat)
                    .holding(lock)
                    .with_write_budget(budget)
            })
        };
        let template = SessionTemplate {
            registry: registry.clone(),
            me: me.clone(),
            timeouts: config.timeouts,
            write_buffer_bytes: config.write_buffer_bytes,
            limits: config.limits,
            write_budget,
            heartbeat,
        };
        let listener = start_listener(socket, addr, template, &config, &supervisor)?;
        let discovery = start_discovery(&config, &me, &registry, &supervisor, &mut warnings);
        adopt_children(&supervisor, &registry, &listener, discovery.as_ref());
        Ok(Node {
            registry,
            listener,
            discovery,
            supervisor,
            caller: Role::Node,
            quit_grace: config.timeouts.quit_grace,
            warnings,
            listen_addr,
            key,
            name: me.name,
        })
    }

    /// The same node, with requests traced as coming from `caller` (the Console uses this).
    pub fn acting_as(&self, caller: Role) -> Node {
        Node {
            caller,
            ..self.clone()
        }
    }

    /// The socket address the node listens on (e.g. 0.0.0.0:9000).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// An address other nodes on this host can reach it at (127.0.0.1 when bound to all).
    pub fn peer_addr(&self) -> PeerAddr {
        let ip = match self.listen_addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        PeerAddr::from_ip_port(ip, self.listen_addr.port())
    }

    /// How long a quit waits for acks of messages in flight (`Timeouts::quit_grace`).
    pub fn quit_grace(&self) -> Duration {
        self.quit_grace
    }

    /// What was wrong in the data directory when the node started (lines skipped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The last `limit` chats shown or delivered, oldest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, NodeStopped> {
        ask(self.caller, &self.registry, History { limit })
            .await
            .map_err(|_| NodeStopped)
    }

    /// Who the peer `selector` names is (`/whois`): a name, a number in the peer list, a
    /// fingerprint prefix or `IP:PORT`.
    pub async fn whois(&self, selector: &str) -> Result<WhoisReport, TrustError> {
        let whois = Whois {
            peer: selector.to_string(),
        };
        let answer = ask(self.caller, &self.registry, whois).await;
        answer.unwrap_or_else(|_| Err(TrustError(NodeStopped.to_string())))
    }

    /// Accepts the changed key of the peer `selector` names (`/trust`), and dials it.
    pub async fn trust(&self, selector: &str) -> Result<KeyChange, TrustError> {
        let trust = Trust {
            peer: selector.to_string(),
        };
        let answer = ask(self.caller, &self.registry, trust).await;
        answer.unwrap_or_else(|_| Err(TrustError(NodeStopped.to_string())))
    }

    /// This node's static public key: who it is to its peers.
    pub fn key(&self) -> PeerKey {
        self.key
    }

    /// Its fingerprint, for people to compare (the start-up line, `/status`).
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every event from now on. Subscribe before acting, or events may pass unseen.
    pub fn events(&self) -> EventStream {
        // A shared stream that only this node is given.
        let (sink, events) = EventStream::shared();
        self.events_to(&sink);
        events
    }

    /// Every event from now on, into a stream that other nodes may share
    /// ([`EventStream::shared`]). Subscribe before acting, or events may pass unseen; each
    /// call subscribes once more (the same sink given twice gets every event twice).
    pub fn events_to(&self, sink: &EventSink) {
        tell(
            self.caller,
            &self.registry,
            Subscribe(Subscriber::Channel(sink.0.clone())),
        );
    }

    /// Every event from now on, to a display's mailbox; the chats of each batch are acked
    /// only once `shown` answers a [`WhenShown`] sent after their events.
    pub fn subscribe_display(&self, events: Recipient<NodeEvents>, shown: Recipient<WhenShown>) {
        tell(
            self.caller,
            &self.registry,
            Subscribe(Subscriber::display(events, shown)),
        );
    }

    /// Every event from now on, to an actor's mailbox (survives that actor's restarts).
    pub fn subscribe(&self, recipient: Recipient<NodeEvent>) {
        tell(
            self.caller,
            &self.registry,
            Subscribe(Subscriber::Actor(recipient)),
        );
    }

    /// Resolves if the node gives up: its restart budget ran out. The node has then closed
    /// every connection and its port; the caller should report the reason and exit.
    pub async fn failed(&self) -> NodeFailure {
        let (tx, rx) = oneshot::channel();
        tell(self.caller, &self.supervisor, WatchFailure(tx));
        match rx.await {
            Ok(failure) => failure,
            // The supervisor is gone without failing: never resolve.
            Err(_) => futures::future::pending().await,
        }
    }

    /// The root of this node's supervision tree, for actors the caller supervises under it
    /// (the Console).
    pub fn supervisor(&self) -> Addr<NodeSupervisor> {
        self.supervisor.clone()
    }

    /// Injects a fault (see [`crate::faults`]). Console faults are the console's to handle.
    pub async fn inject(&self, fault: Fault) -> Result<(), InjectError> {
        match fault {
            Fault::Actor(ChildName::Registry, fault) => {
                tell(self.caller, &self.registry, Inject(fault))
            }
            Fault::Actor(ChildName::Listener, fault) => {
                tell(self.caller, &self.listener, Inject(fault))
            }
            Fault::Actor(ChildName::Console, _) => {
                return Err(InjectError::NoSuchActor(ChildName::Console))
            }
            Fault::Actor(ChildName::Discovery, fault) => match &self.discovery {
                Some(discovery) => tell(self.caller, discovery, Inject(fault)),
                None => return Err(InjectError::NoSuchActor(ChildName::Discovery)),
            },
            Fault::Connection(peer, fault) => {
                return ask(
                    self.caller,
                    &self.registry,
                    InjectConnection { peer, fault },
                )
                .await
                .unwrap_or(Err(InjectError::NodeStopped))
            }
            Fault::ListenerGone => tell(
                self.caller,
                &self.listener,
                Retire {
                    reason: "listener gone (injected)".into(),
                },
            ),
        }
        Ok(())
    }

    /// Queues a chat; the outcome arrives as `Delivered` or `DeliveryFailed` with this id.
    pub async fn send_chat(
        &self,
        to: PeerAddr,
        text: impl Into<String>,
    ) -> Result<MessageId, SendError> {
        let text = text.into();
        ask(self.caller, &self.registry, SendChat { to, text })
            .await
            .unwrap_or(Err(SendError::ShuttingDown))
    }

    /// Queues several chats to one peer, in order, in one request: all are accepted (their ids
    /// come back in the same order) or none is. Cheaper than a `send_chat` per text when
    /// many are ready at once.
    pub async fn send_chats<T: Into<String>>(
        &self,
        to: PeerAddr,
        texts: impl IntoIterator<Item = T>,
    ) -> Result<Vec<MessageId>, SendError> {
        let texts = texts.into_iter().map(Into::into).collect();
        ask(self.caller, &self.registry, SendChats { to, texts })
            .await
            .unwrap_or(Err(SendError::ShuttingDown))
    }

    /// Queues one chat with `text` to each of `to` (as `/all` does), in one request: each
    /// outcome says, in the order of `to`, whether that peer's chat was accepted (its id; the
    /// outcome arrives later as `Delivered` or `DeliveryFailed`) or why not, as
    /// [`Node::send_chat`] would. Cheaper than a `send_chat` per peer: the Registry takes
    /// them in one turn and the chats to connected peers leave together.
    /// `Err` only if the node stopped or the Registry failed while taking them (chats it took
    /// before failing are reported by events like any other).
    pub async fn send_chat_to_each(
        &self,
        to: impl IntoIterator<Item = PeerAddr>,
        text: impl Into<String>,
    ) -> Result<Vec<Result<MessageId, SendError>>, SendError> {
        let to = to.into_iter().collect();
        let text = text.into();
        ask(self.caller, &self.registry, SendChatToEach { to, text })
            .await
            .unwrap_or(Err(SendError::ShuttingDown))
    }

    /// Connects to `to` (the handshake included); `AlreadyConnected` if it is.
    pub async fn connect(&self, to: PeerAddr) -> Result<ConnectOutcome, ConnectError> {
        ask(self.caller, &self.registry, Connect { to })
            .await
            .unwrap_or(Err(ConnectError::ShuttingDown))
    }

    /// Connects to a nearby peer at `to` that announced `key` as `name`: ends well only with
    /// a session proving that key (another is refused and reported as a `KeyMismatch`).
    pub async fn connect_announced(
        &self,
        to: PeerAddr,
        key: PeerKey,
        name: &str,
    ) -> Result<ConnectOutcome, ConnectError> {
        let name = name.to_string();
        ask(
            self.caller,
            &self.registry,
            ConnectAnnounced { to, key, name },
        )
        .await
        .unwrap_or(Err(ConnectError::ShuttingDown))
    }

    /// Refreshes the peer list from connected peers, then connects to every known peer.
    pub async fn connect_all(&self) -> Result<ConnectAllReport, NodeStopped> {
        ask(self.caller, &self.registry, ConnectAll)
            .await
            .map_err(|_| NodeStopped)
    }

    /// Every known peer: address, name, connected or not, chats waiting (menu 2).
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeStopped> {
        ask(self.caller, &self.registry, ListPeers)
            .await
            .map_err(|_| NodeStopped)
    }

    /// Peers announced on the LAN that this node has no session with (menu 2, `/peers`);
    /// empty without discovery.
    pub async fn nearby(&self) -> Result<Vec<NearbyPeer>, NodeStopped> {
        ask(self.caller, &self.registry, ListNearby)
            .await
            .map_err(|_| NodeStopped)
    }

    /// Whether this node announces itself and looks for peers on the LAN.
    pub fn discovers(&self) -> bool {
        self.discovery.is_some()
    }

    /// Says `bye` to one peer (menu 5); it stays known.
    pub async fn disconnect(&self, peer: PeerAddr) -> Result<(), NotConnected> {
        ask(self.caller, &self.registry, Disconnect { peer })
            .await
            .unwrap_or(Err(NotConnected(peer)))
    }

    /// Says bye to every connected peer; returns how many.
    pub async fn disconnect_all(&self) -> Result<usize, NodeStopped> {
        ask(self.caller, &self.registry, DisconnectAll)
            .await
            .map_err(|_| NodeStopped)
    }

    /// Waits up to `grace` for acks in flight, says bye to everyone, stops the actors.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        // Goodbye packets first, so that nobody tries this node while it quits.
        if let Some(discovery) = &self.discovery {
            let retire = Retire {
                reason: "node shut down".into(),
            };
            let _ = ask(self.caller, discovery, retire).await;
        }
        let report = ask(self.caller, &self.registry, Shutdown { grace })
            .await
            .unwrap_or_default();
        // Awaited: the port is free again when this returns.
        let _ = ask(
            self.caller,
            &self.listener,
            Retire {
                reason: "node shut down".into(),
            },
        )
        .await;
        report
    }
}

/// The node's identity: its own key file, else its data directory's key (the directory
/// locked, so that two nodes never share it), else a key of its own for this run.
fn take_identity(config: &NodeConfig) -> Result<(Identity, Option<String>), StartError> {
    match (&config.key_file, &config.data_dir) {
        (Some(file), _) => Identity::from_key_file(file).map(|id| (id, None)),
        (None, Some(dir)) => Identity::open(dir),
        (None, None) => Identity::ephemeral().map(|id| (id, None)),
    }
    .map_err(StartError::Identity)
}

/// The listening socket and the address it got (port 0 becomes a real port).
fn bind_port(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let socket = listener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    let listen_addr = socket
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((socket, listen_addr))
}

/// The data directory, if any: pending chats, the shown-chat record.
fn open_store(config: &NodeConfig) -> Result<(Option<Store>, Recovered), StartError> {
    let Some(dir) = &config.data_dir else {
        return Ok((None, Recovered::default()));
    };
    let (store, recovered) = Store::open(dir).map_err(|source| StartError::DataDir {
        dir: dir.clone(),
        source,
    })?;
    Ok((Some(store), recovered))
}

/// Who this node is to its peers.
fn local_identity(
    keys: StaticKeypair,
    config: &NodeConfig,
    listen_addr: SocketAddr,
) -> LocalIdentity {
    LocalIdentity {
        keys,
        name: config.name.clone(),
        // A one-shot sender tells its peers it does not listen.
        listen_port: if config.one_shot {
            0
        } else {
            listen_addr.port()
        },
        bind: config.bind,
    }
}

/// The Listener, accepting on the port already bound.
fn start_listener(
    socket: TcpListener,
    addr: SocketAddr,
    template: SessionTemplate,
    config: &NodeConfig,
    supervisor: &Addr<NodeSupervisor>,
) -> Result<Addr<Listener>, StartError> {
    let listener = Listener::new(socket, template, SupervisorLink::to(supervisor))
        .map_err(|source| StartError::Bind { addr, source })?
        .with_classic(config.classic)
        .with_limits(config.limits);
    Ok(Supervisor::start(move |_| listener))
}

/// Hands the root supervisor its children: where to publish its reports, and whom to retire
/// when the node gives up.
fn adopt_children(
    supervisor: &Addr<NodeSupervisor>,
    registry: &Addr<Registry>,
    listener: &Addr<Listener>,
    discovery: Option<&Addr<Discovery>>,
) {
    let mut retire = vec![
        (Role::Registry, registry.clone().recipient()),
        (Role::Listener, listener.clone().recipient()),
    ];
    if let Some(discovery) = discovery {
        retire.push((Role::Discovery, discovery.clone().recipient()));
    }
    tell(
        Role::Node,
        supervisor,
        Adopt {
            events: registry.clone().recipient(),
            retire,
        },
    );
}

/// The Discovery actor, if the configuration asks for it and the node is not on loopback;
/// a daemon that cannot start is a warning, not a failed start.
fn start_discovery(
    config: &NodeConfig,
    me: &LocalIdentity,
    registry: &Addr<Registry>,
    supervisor: &Addr<NodeSupervisor>,
    warnings: &mut Vec<String>,
) -> Option<Addr<Discovery>> {
    if !config.discovery || !discovery::wanted(config.bind) {
        return None;
    }
    let link = SupervisorLink::to(supervisor);
    match Discovery::start(me, registry.clone().recipient(), link) {
        Ok(discovery) => Some(discovery),
        Err(err) => {
            warnings.push(format!("LAN discovery is off: {err}"));
            None
        }
    }
}
