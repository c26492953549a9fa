//! Classic peers through the Registry (issue 15): what a classic connection said
//! (`ClassicIncoming`, from the Listener's classic tasks, classic_session.rs), our chats to
//! classic peers (`SendClassic`, or a `SendChat` to an address known to be classic), the end
//! of each piece's connection (`ClassicAttempted`, from the sender tasks this file starts) and
//! menu 2's list (`ListClassicPeers`). The logic is in plain parts: `ClassicPeers`,
//! `ClassicOutbox` and the texts of `classic::text`. Classic chats go into the history (and
//! the Store) like peerchat's, marked `classic`, without a key; they never enter the outbox
//! of acks: the classic protocol has none, its `[ACK]` reply is the end of one connection.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{Registry, SendError};
use crate::classic::outbox::{ClassicOutbox, Progress};
use crate::classic::peers::{ClassicPeerInfo, ClassicPeers};
use crate::classic::rate::ClassicRates;
use crate::classic::sender::send_piece;
use crate::classic::text::{
    ack_reply, connect_reply, piece_budget, shown_ip, split_text, team_name, Inbound,
};
use crate::classic::{ClassicConfig, ClassicEvent};
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::helpers::now_ms;
use crate::peer::{MessageId, PeerAddr};
use crate::store::HistoryEntry;
use crate::trace::{tell, Role};
use crate::wire::MAX_TEXT_BYTES;

/// Pause before the second attempt at a piece; the third waits twice as long, and so on.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The Registry's classic state: its settings, the classic peers and our chats to them.
#[derive(Debug)]
pub(super) struct Classic {
    config: ClassicConfig,
    peers: ClassicPeers,
    outbox: ClassicOutbox,
    /// How fast each source IP's texts are handled (`Limits::classic_chats`).
    rates: ClassicRates,
}

impl Classic {
    pub(super) fn new(config: ClassicConfig) -> Self {
        Classic {
            config,
            peers: ClassicPeers::new(),
            outbox: ClassicOutbox::new(),
            rates: ClassicRates::new(),
        }
    }

    /// Whether `addr` speaks the classic protocol: never dial it with peerchat's.
    pub(super) fn is_classic(&self, addr: &PeerAddr) -> bool {
        self.peers.is_classic(addr)
    }
}

/// From a classic connection, once its text is read and before it is handed on: when may
/// it be? Answers how long to wait first (zero within `Limits::classic_chats` for its source
/// IP), or `None` to close without a reply (it would wait longer than `longest`).
#[derive(Message, Debug)]
#[rtype(result = "Option<Duration>")]
pub struct ClassicTurn {
    /// The connection's source IP (what it claims in its text is not counted: anyone can).
    pub ip: IpAddr,
    /// The longest the connection may wait (its time limit).
    pub longest: Duration,
}

guarded_handler!(
    Registry,
    ClassicTurn as MessageResult<ClassicTurn>,
    |act, msg, _| {
        let rate = act.limits.classic_chats;
        let turn = act
            .classic
            .rates
            .turn(msg.ip, rate, Instant::now(), msg.longest);
        MessageResult(turn)
    },
    on_panic: MessageResult(None),
);

/// From a classic connection: what it said, parsed. Answers the reply to write before
/// closing, or `None` to close without one.
#[derive(Message, Debug)]
#[rtype(result = "Option<String>")]
pub struct ClassicIncoming {
    /// The connection's source address.
    pub remote: SocketAddr,
    /// What it said.
    pub inbound: Inbound,
    /// It sent more than we read (`classic::text::MAX_INBOUND_BYTES`).
    pub cut: bool,
}

guarded_handler!(
    Registry,
    ClassicIncoming as MessageResult<ClassicIncoming>,
    |act, msg, _| MessageResult(act.on_classic_incoming(msg)),
    on_panic: MessageResult(None),
);

impl Registry {
    fn on_classic_incoming(&mut self, msg: ClassicIncoming) -> Option<String> {
        let source = msg.remote.ip();
        let peer = |claimed: PeerAddr| {
            PeerAddr::from_ip_port(shown_ip(claimed.ip(), source), claimed.port())
        };
        let ack = ack_reply(self.me.listen_port);
        let (event, reply) = match msg.inbound {
            Inbound::Message {
                claimed,
                team,
                text,
            } => {
                let from = peer(claimed);
                self.classic.peers.heard(from, Some(&team));
                let event = if text == "exit" {
                    self.classic.peers.left(from);
                    ClassicEvent::Left {
                        from,
                        team: Some(team),
                        said: text,
                    }
                } else {
                    // Recorded before it is shown, as a peerchat chat is.
                    self.record(HistoryEntry::In {
                        at_ms: now_ms(),
                        from,
                        name: team.clone(),
                        key: None,
                        id: 0,
                        text: text.clone(),
                        classic: true,
                        cut: msg.cut,
                    });
                    ClassicEvent::Chat {
                        from,
                        team,
                        text,
                        cut: msg.cut,
                    }
                };
                (event, Some(ack))
            }
            Inbound::ConnectRequest { claimed } => {
                let from = peer(claimed);
                let accepted = self.classic.config.accept;
                self.classic.peers.asked_to_connect(from, accepted);
                let event = ClassicEvent::ConnectRequest { from, accepted };
                (event, Some(connect_reply(accepted).to_string()))
            }
            Inbound::Disconnected { claimed } => {
                let from = peer(claimed);
                let team = self.classic.peers.left(from);
                let said = "DISCONNECTED".to_string();
                (ClassicEvent::Left { from, team, said }, Some(ack))
            }
            Inbound::Invalid { reason } => {
                let remote = msg.remote;
                (ClassicEvent::Invalid { remote, reason }, None)
            }
        };
        self.emit(NodeEvent::Classic(event));
        reply
    }
}

/// Send a chat to a classic peer (`classic:IP:PORT` in menu 1 or `/msg`): the peer is known
/// as classic from now on. The id comes back at once, the outcome later as `Delivered` or
/// `DeliveryFailed`; a long text goes as several classic messages, in order.
#[derive(Message, Debug)]
#[rtype(result = "Result<MessageId, SendError>")]
pub struct SendClassic {
    /// The classic peer.
    pub to: PeerAddr,
    /// The text.
    pub text: String,
}

guarded_handler!(
    Registry,
    SendClassic,
    |act, msg, ctx| act.on_send_classic(msg.to, msg.text, ctx),
    on_panic: Err(SendError::RegistryFailed),
);

impl Registry {
    /// Queues `text` for the classic peer `to` (also for a `SendChat` to a classic address).
    pub(super) fn on_send_classic(
        &mut self,
        to: PeerAddr,
        text: String,
        ctx: &mut Context<Self>,
    ) -> Result<MessageId, SendError> {
        if self.draining() {
            return Err(SendError::ShuttingDown);
        }
        if self.peers.is_self(&to) {
            return Err(SendError::SelfAddress);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(SendError::TooLong { len: text.len() });
        }
        self.classic.peers.mark(to);
        let team = team_name(&self.me.name);
        let mut pieces = split_text(&text, piece_budget(&to, &team));
        if pieces.is_empty() {
            // Only whitespace: sent as it is; the receiver says what it makes of it.
            pieces.push(String::new());
        }
        self.next_message_id += 1;
        let id = self.next_message_id;
        self.classic.outbox.push(id, to, text, pieces);
        self.send_next_classic(to, ctx);
        Ok(id)
    }

    /// Starts the next piece to `to` on a connection of its own, unless one is on its way.
    /// The task is not the Registry's future: a restarted Registry still hears how it ended.
    fn send_next_classic(&mut self, to: PeerAddr, ctx: &mut Context<Self>) {
        let Some(attempt) = self.classic.outbox.next(to) else {
            return;
        };
        let registry = ctx.address();
        let team = team_name(&self.me.name);
        let limit = self.classic.config.timeout;
        let port = self.me.listen_port;
        let pause = RETRY_PAUSE * attempt.failures;
        actix_rt::spawn(async move {
            if !pause.is_zero() {
                actix_rt::time::sleep(pause).await;
            }
            let result = send_piece(to.socket_addr(), &team, port, &attempt.piece, limit).await;
            let id = attempt.id;
            tell(
                Role::Registry,
                &registry,
                ClassicAttempted { to, id, result },
            );
        });
    }
}

/// From a classic sender task: the connection carrying a piece of chat `id` to `to` ended;
/// `Ok` if the peer replied `[ACK]`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ClassicAttempted {
    /// The classic peer.
    pub to: PeerAddr,
    /// The chat the piece belongs to.
    pub id: MessageId,
    /// `Ok`, or why it failed.
    pub result: Result<(), String>,
}

guarded_handler!(Registry, ClassicAttempted, |act, msg, ctx| act
    .on_classic_attempted(msg, ctx));

impl Registry {
    fn on_classic_attempted(&mut self, msg: ClassicAttempted, ctx: &mut Context<Self>) {
        let to = msg.to;
        let attempts = self.classic.config.attempts;
        match self.classic.outbox.done(to, msg.id, msg.result, attempts) {
            Progress::Delivered { id, text } => {
                self.record(HistoryEntry::Out {
                    at_ms: now_ms(),
                    to,
                    id,
                    text: text.clone(),
                    classic: true,
                });
                self.emit(NodeEvent::Delivered { to, id, text });
            }
            Progress::Acked | Progress::Stale => {}
            Progress::Retry { reason, failures } => {
                let waiting = self.classic.outbox.waiting(&to);
                let retry_in = RETRY_PAUSE * failures;
                self.emit(NodeEvent::DeliveryDelayed {
                    to,
                    waiting,
                    reason,
                    retry_in,
                });
            }
            Progress::Failed { id, text, reason } => {
                let reason = format!("classic peer: {reason}");
                self.emit(NodeEvent::DeliveryFailed {
                    to,
                    id,
                    text,
                    reason,
                });
            }
        }
        self.send_next_classic(to, ctx);
    }
}

/// Menu 2, `/peers`: every classic peer.
#[derive(Message, Debug)]
#[rtype(result = "Vec<ClassicPeerInfo>")]
pub struct ListClassicPeers;

guarded_handler!(
    Registry,
    ListClassicPeers as MessageResult<ListClassicPeers>,
    |act, _, _| {
        let outbox = &act.classic.outbox;
        MessageResult(act.classic.peers.list(|peer| outbox.waiting(peer)))
    },
    on_panic: MessageResult(Vec::new()),
);
