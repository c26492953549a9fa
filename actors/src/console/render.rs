//! What the Console prints, as text: the menu, node events, listings and what each command
//! brought back ([`Outcome`]). Pure: everything it needs comes in as arguments, every text
//! from a peer goes through `visible`, and colour comes from the [`Look`].

use std::net::SocketAddr;
use std::time::Duration;

use super::look::{wrap, Look};
use crate::events::{NodeEvent, SupervisionStep};
use crate::peer::{MessageId, PeerAddr, PeerInfo};
use crate::reasons::plain;
use crate::registry::MAX_DIALS_AT_ONCE;
use crate::sanitize::{push_visible, visible};
use crate::store::HistoryEntry;
use crate::{ConnectAllReport, ConnectOutcome};

/// The standard menu, printed as it is.
pub const MENU: &str = "\
***** Menu *****
1. Send message
2. Query active peers
3. Connect to active peers
4. Disconnect from all peers
5. Disconnect from a peer
0. Quit";

/// What `/help` prints.
pub const SHORTCUTS: &str = "\
Shortcuts (type them at \"Choose an option:\" or in a conversation):
  /msg PEER text       send text to a peer (also /m)
  /r text              reply to the peer who wrote to you last
  /talk PEER           talk to a peer: a line you type goes to them (also /t)
  /menu                leave the conversation, back to the menu (also /leave)
  /all text            send text to every connected peer
  /peers               list known peers, like 2
  /connect [PEER]      connect to one peer, or to all known peers like 3
  /cancel PEER         cancel the messages waiting for a peer
  /forget PEER         cancel its messages, disconnect and forget a peer
  /status              your name, key and addresses, connected peers, messages waiting
  /whois PEER          a peer's key, addresses and whether its key is pinned
  /trust PEER          accept the new key of a peer whose key changed
  /history [N]         the last N messages shown or delivered (default 20)
  /help                this list
  /quit                quit, like 0 (also /q)
PEER: a name, a number from /peers, IP:PORT, HOST:PORT or classic:IP:PORT.";

/// The one line shown on a terminal, instead of the whole menu, after a numbered choice.
pub const MENU_HINT: &str =
    "(Enter or ? shows the menu: 1 send, 2 peers, 3 connect, 4/5 disconnect, 0 quit; /help)";

/// What one command's trip to the node brought back. Errors are the node's own words.
#[derive(Debug)]
pub enum Outcome {
    /// The peers, for the status line above the menu on a terminal.
    Menu(Result<Status, String>),
    /// A chat was queued (or not).
    Sent {
        /// The recipient.
        to: PeerAddr,
        /// The text, made `visible`.
        shown: String,
        /// Its id, to match the ack later.
        result: Result<MessageId, String>,
    },
    /// Every known peer (menu 2, `/peers`).
    Peers(Result<Vec<PeerInfo>, String>),
    /// Menu 3, `/connect`.
    ConnectedAll(Result<ConnectAllReport, String>),
    /// `/connect IP:PORT`.
    Connected {
        /// The peer.
        peer: PeerAddr,
        /// How it went.
        result: Result<ConnectOutcome, String>,
    },
    /// Menu 4: how many peers were disconnected.
    DisconnectedAll(Result<usize, String>),
    /// Menu 5's list: the connected peers, to choose one from.
    ToDisconnect(Vec<PeerInfo>),
    /// Menu 5's answer.
    Disconnected {
        /// The peer.
        peer: PeerAddr,
        /// How it went.
        result: Result<(), String>,
    },
    /// `/history`, oldest first, with the names of the peers known now (for whom we wrote to).
    History(Result<Vec<HistoryEntry>, String>, Vec<(PeerAddr, String)>),
    /// `/status`.
    Status(Result<Status, String>),
    /// A `!` fault was injected (or not).
    Injected(Result<(), String>),
    /// `/whois`, `/trust` (console/identity.rs).
    Identity(super::identity::Answer),
}

/// Who and where this node is, and its peers: the status line.
#[derive(Debug, Clone)]
pub struct Status {
    /// This node's name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where peers can reach it (addresses.rs); empty: `addr`.
    pub reachable: Vec<SocketAddr>,
    /// Its known peers.
    pub peers: Vec<PeerInfo>,
}

/// What an outcome says to the user, wrapped to `width` where it holds a typed text.
pub fn outcome(outcome: &Outcome, look: &Look, width: Option<usize>) -> String {
    match outcome {
        Outcome::Menu(status) => status
            .as_ref()
            .map(|status| status_line(status, look))
            .unwrap_or_default(),
        Outcome::Sent { to, shown, result } => match result {
            Ok(_) => wrap(&format!("Sending to {}: {shown}", look.addr(to)), width),
            Err(err) => look.bad(format!("Cannot send to {to}: {}.", visible(&plain(err)))),
        },
        Outcome::Peers(peers) => match peers {
            Ok(peers) => peer_listing(peers, false, look),
            Err(err) => look.bad(err),
        },
        Outcome::ConnectedAll(report) => match report {
            Ok(report) => connect_all_listing(report, look),
            Err(err) => look.bad(err),
        },
        Outcome::Connected { peer, result } => match result {
            Ok(ConnectOutcome::Connected) => {
                format!("{} {}.", look.good("Connected to"), look.addr(peer))
            }
            Ok(ConnectOutcome::AlreadyConnected) => {
                format!("Already connected to {}.", look.addr(peer))
            }
            Err(err) => look.bad(format!(
                "Cannot connect to {peer}: {}.",
                visible(&plain(err))
            )),
        },
        Outcome::DisconnectedAll(count) => match count {
            Ok(0) => "Not connected to any peer.".to_string(),
            Ok(n) => format!("{} {n} peer(s).", look.warn("Disconnected from")),
            Err(err) => look.bad(err),
        },
        Outcome::ToDisconnect(peers) if !peers.iter().any(|p| p.connected) => {
            "Not connected to any peer.".to_string()
        }
        Outcome::ToDisconnect(connected) => peer_listing(connected, true, look),
        Outcome::Disconnected { peer, result } => match result {
            Ok(()) => format!("{} {}.", look.warn("Disconnected from"), look.addr(peer)),
            Err(err) => look.bad(format!("{}.", visible(&plain(err)))),
        },
        Outcome::History(history, names) => match history {
            Ok(entries) if entries.is_empty() => "No messages yet.".into(),
            Ok(entries) => history_listing(entries, names, look),
            Err(err) => look.bad(err),
        },
        Outcome::Status(status) => match status {
            Ok(status) => status_line(status, look),
            Err(err) => look.bad(err),
        },
        Outcome::Injected(result) => match result {
            Ok(()) => "Injected.".to_string(),
            Err(err) => look.bad(format!("Cannot inject: {err}")),
        },
        Outcome::Identity(answer) => super::identity::answer(answer, look),
    }
}

/// The menu on a terminal: its title in bold.
pub fn menu(look: &Look) -> String {
    match MENU.split_once('\n') {
        Some((title, items)) => format!("{}\n{items}", look.heading(title)),
        None => MENU.to_string(),
    }
}

/// The `[HH:MM:SS]` that starts an event line, for the wall-clock `time` (`HH:MM:SS`).
pub fn stamp(time: &str, look: &Look) -> String {
    look.dim(format!("[{time}]"))
}

/// `name (address)`: who sent a chat, as its line shows them.
pub fn sender(name: &str, from: &PeerAddr, look: &Look) -> String {
    format!("{} ({})", look.name(&visible(name)), look.addr(from))
}

/// Appends a chat's line, `[HH:MM:SS] name (address): text`, to `out`, from the parts
/// [`stamp`] and [`sender`] made: the Console's hot path, which allocates nothing.
pub fn push_chat_line(out: &mut String, stamp: &str, sender: &str, text: &str) {
    out.push_str(stamp);
    out.push(' ');
    out.push_str(sender);
    out.push_str(": ");
    push_visible(out, text);
}

/// One line for an event, stamped with the wall-clock `time` (`HH:MM:SS`).
pub fn event(event: &NodeEvent, look: &Look, time: &str) -> String {
    let time = stamp(time, look);
    let who = |name: &str, addr: &PeerAddr| sender(name, addr, look);
    match event {
        NodeEvent::ChatReceived {
            from, name, text, ..
        } => chat_line(&time, &who(name, from), text),
        NodeEvent::Delivered { to, text, .. } => {
            let what = look.good("delivered");
            format!("{time} {what} to {}: {}", look.addr(to), visible(text))
        }
        NodeEvent::DeliveryDelayed {
            to,
            waiting,
            reason,
            retry_in,
        } => delayed_line(look, &time, to, *waiting, reason, *retry_in),
        NodeEvent::DeliveryFailed {
            to, text, reason, ..
        } => failed_line(look, &time, to, text, reason),
        NodeEvent::PeerConnected { peer, name, .. } => {
            format!("{time} {} {}", look.good("connected to"), who(name, peer))
        }
        NodeEvent::PeerDisconnected { peer, name, reason } => {
            disconnected_line(look, &time, &who(name, peer), reason)
        }
        NodeEvent::PeerDiscovered { peer, name } => {
            format!("{time} learned of peer {}", who(name, peer))
        }
        NodeEvent::NotSaved { to, id, error } => not_saved_line(look, &time, to, id, error),
        NodeEvent::StorageFailed { error } => storage_failed_line(look, &time, error),
        NodeEvent::ConnectionRefused { remote, reason } => {
            refused_line(look, &time, remote, reason)
        }
        NodeEvent::KeyChanged { .. } | NodeEvent::KeyMismatch { .. } => {
            super::identity::event(event, look, &time).unwrap_or_default()
        }
        NodeEvent::Classic(classic) => super::classic::event(classic, look, &time),
        NodeEvent::Supervision { actor, step } => {
            format!("{time} supervisor: {actor} {}", supervision_text(step))
        }
    }
}

fn chat_line(time: &str, sender: &str, text: &str) -> String {
    let mut line = String::new();
    push_chat_line(&mut line, time, sender, text);
    line
}

fn delayed_line(
    look: &Look,
    time: &str,
    to: &PeerAddr,
    waiting: usize,
    reason: &str,
    retry_in: Duration,
) -> String {
    format!(
        "{time} {} {} ({}): {waiting} message(s) waiting, retrying in {:.1}s",
        look.addr(to),
        look.bad("unreachable"),
        visible(&plain(reason)),
        retry_in.as_secs_f64()
    )
}

fn failed_line(look: &Look, time: &str, to: &PeerAddr, text: &str, reason: &str) -> String {
    format!(
        "{time} {} to {} ({}): {}",
        look.bad("failed to deliver"),
        look.addr(to),
        visible(text),
        visible(&plain(reason))
    )
}

fn disconnected_line(look: &Look, time: &str, who: &str, reason: &str) -> String {
    format!(
        "{time} {} {who}: {}",
        look.warn("disconnected from"),
        visible(&plain(reason))
    )
}

fn not_saved_line(look: &Look, time: &str, to: &PeerAddr, id: &MessageId, error: &str) -> String {
    format!(
        "{time} {} message {id} to {} ({}): it is sent while the node runs, and lost if it \
         quits first",
        look.bad("not saved:"),
        look.addr(to),
        visible(error)
    )
}

fn storage_failed_line(look: &Look, time: &str, error: &str) -> String {
    format!(
        "{time} {} {} (said once until a write works again)",
        look.bad("cannot write to the data directory:"),
        visible(error)
    )
}

fn refused_line(look: &Look, time: &str, remote: &SocketAddr, reason: &str) -> String {
    format!(
        "{time} {} from {}: {}",
        look.warn("refused a connection"),
        look.addr(remote),
        visible(&plain(reason))
    )
}

fn supervision_text(step: &SupervisionStep) -> String {
    match step {
        SupervisionStep::Failed { reason } => format!("failed: {}", visible(reason)),
        SupervisionStep::Restarting { restarts_in_window } => {
            format!("restarting (restart {restarts_in_window} in the current window)")
        }
        SupervisionStep::Restarted => "restarted".into(),
        SupervisionStep::Escalated { reason } => {
            format!("failed too often, node gives up: {}", visible(reason))
        }
    }
}

/// One line: who and where we are, how many peers are connected, how many of our messages
/// wait for an ack.
pub fn status_line(status: &Status, look: &Look) -> String {
    let peers = &status.peers;
    let connected = peers.iter().filter(|p| p.connected).count();
    let waiting: usize = peers.iter().map(|p| p.waiting).sum();
    format!(
        "{} {} at {} | connected peers: {} ({} known) | messages waiting: {}",
        look.heading("Status:"),
        look.name(&visible(&status.name)),
        match status.reachable.as_slice() {
            [] => look.addr(status.addr),
            reachable => look.addr(super::addresses::joined(reachable)),
        },
        if connected > 0 {
            look.good(connected)
        } else {
            look.warn(connected)
        },
        peers.len(),
        if waiting > 0 {
            look.warn(waiting)
        } else {
            waiting.to_string()
        },
    )
}

/// Menu 2 and `/peers` (every known peer), or menu 5's list (`connected_only`).
fn peer_listing(peers: &[PeerInfo], connected_only: bool, look: &Look) -> String {
    if peers.is_empty() {
        return "No known peers yet.".into();
    }
    let mut text = String::from(if connected_only {
        "Connected peers:"
    } else {
        "Known peers:"
    });
    // Numbered in the one list (names.rs): menu 5 shows the connected ones, numbers kept.
    let shown = peers
        .iter()
        .enumerate()
        .filter(|(_, peer)| !connected_only || peer.connected);
    for (n, peer) in shown {
        let (name, state) = name_and_state(peer.name.as_deref(), peer.connected, look);
        let waiting = match peer.waiting {
            0 => String::new(),
            n => format!(", {n} message(s) waiting"),
        };
        text.push_str(&format!(
            "\n  {}. {}  {name}  {state}{waiting}{}",
            n + 1,
            look.addr(peer.addr),
            super::identity::peer_suffix(peer, look),
        ));
    }
    text
}

fn connect_all_listing(report: &ConnectAllReport, look: &Look) -> String {
    if report.attempts.is_empty() && report.already_connected.is_empty() {
        return "No known peers to connect to.".into();
    }
    let mut lines = Vec::new();
    for (peer, result) in &report.attempts {
        let peer = look.addr(peer);
        lines.push(match result {
            Ok(ConnectOutcome::Connected) => format!("  {peer}: {}", look.good("connected")),
            Ok(ConnectOutcome::AlreadyConnected) => format!("  {peer}: already connected"),
            Err(err) => format!(
                "  {peer}: {}",
                look.bad(format!("failed: {}", visible(&plain(&err.to_string()))))
            ),
        });
    }
    for peer in &report.already_connected {
        lines.push(format!("  {}: already connected", look.addr(peer)));
    }
    if report.not_tried > 0 {
        lines.push(format!(
            "  {} more not tried now (at most {MAX_DIALS_AT_ONCE} at once): choose 3 again",
            report.not_tried
        ));
    }
    format!("Connect to active peers:\n{}", lines.join("\n"))
}

/// `/history`: one line per message, oldest first, in local time.
fn history_listing(entries: &[HistoryEntry], names: &[(PeerAddr, String)], look: &Look) -> String {
    // Whom we wrote to, by name: the peers known now, else the name they wrote under. Keyed
    // by protocol too: a classic sender's address and team name are only claimed (nothing
    // proves them), so they never name a chat to a peerchat peer, nor the reverse.
    let mut known: std::collections::HashMap<(PeerAddr, bool), &str> =
        std::collections::HashMap::new();
    for entry in entries {
        if let HistoryEntry::In {
            from,
            name,
            classic,
            ..
        } = entry
        {
            known.insert((*from, *classic), name);
        }
    }
    for (addr, name) in names {
        known.insert((*addr, false), name);
    }
    let time = |at_ms: u64| {
        chrono::DateTime::from_timestamp_millis(at_ms as i64)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    };
    // A classic chat carries the mark its live line had (console/classic.rs).
    let mark = |classic: bool| {
        if classic {
            format!("{} ", look.dim(super::classic::MARK))
        } else {
            String::new()
        }
    };
    let lines: Vec<String> = entries
        .iter()
        .map(|entry| match entry {
            HistoryEntry::In {
                at_ms,
                from,
                name,
                text,
                classic,
                cut,
                ..
            } => format!(
                "  {} {}{} ({}): {}{}",
                look.dim(time(*at_ms)),
                mark(*classic),
                look.name(&visible(name)),
                from,
                visible(text),
                super::classic::cut_note(*cut, look)
            ),
            HistoryEntry::Out {
                at_ms,
                to,
                text,
                classic,
                ..
            } => match known.get(&(*to, *classic)).filter(|name| !name.is_empty()) {
                Some(name) => format!(
                    "  {} {}you to {} ({}): {}",
                    look.dim(time(*at_ms)),
                    mark(*classic),
                    look.name(&visible(name)),
                    to,
                    visible(text)
                ),
                None => format!(
                    "  {} {}you to {}: {}",
                    look.dim(time(*at_ms)),
                    mark(*classic),
                    to,
                    visible(text)
                ),
            },
        })
        .collect();
    format!("History:\n{}", lines.join("\n"))
}

/// The start of a text already shown, to say which message a short line is about.
pub fn excerpt(shown: &str) -> String {
    const KEPT: usize = 24;
    match shown.char_indices().nth(KEPT) {
        Some((at, _)) => format!("{}…", &shown[..at]),
        None => shown.to_string(),
    }
}

/// The first line of quitting: why, and how many messages still wait for an ack.
pub fn quitting(why: &str, waiting: usize) -> String {
    if waiting > 0 {
        format!("Quitting ({why}): waiting for {waiting} message(s) to be acknowledged...")
    } else {
        format!("Quitting ({why})...")
    }
}

/// The warning after quitting with messages not delivered, if any were left. `not_saved` of
/// them could not be written to the data directory: never claimed kept.
pub fn undelivered(
    undelivered: usize,
    kept: bool,
    not_saved: usize,
    look: &Look,
) -> Option<String> {
    match (undelivered, kept) {
        (0, _) => None,
        (n, true) if not_saved > 0 => Some(look.bad(format!(
            "Warning: {n} message(s) not delivered yet; {not_saved} of them could not be saved \
             and are lost, the others are kept in the data directory and sent at the next start."
        ))),
        (n, true) => Some(look.bad(format!(
            "Warning: {n} message(s) not delivered yet; they are kept in the data directory \
             and sent at the next start."
        ))),
        (n, false) => Some(look.bad(format!("Warning: {n} message(s) were not delivered."))),
    }
}

/// A listed peer's name (escaped; `?` if none is known) and its state, as every listing
/// shows them.
pub(super) fn name_and_state(name: Option<&str>, connected: bool, look: &Look) -> (String, String) {
    let name = match name {
        Some(name) => look.name(&visible(name)),
        None => "?".into(),
    };
    let state = if connected {
        look.good("connected")
    } else {
        look.warn("not connected")
    };
    (name, state)
}

#[cfg(test)]
mod tests;
