//! Fault injection: the faults a test, a library user or (with `--faults`) the console can
//! inject into a running node, to watch supervision heal it. See docs/faults.md.

use std::fmt;
use std::time::Duration;

use actix::prelude::*;

use crate::child::ChildName;
use crate::peer::PeerAddr;

/// A fault for one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorFault {
    /// Stop as a failure (`ctx.stop()` after recording why).
    Crash,
    /// Panic inside a message handler.
    Panic,
    /// Block the actor's mailbox for this long: no message is handled meanwhile.
    Stall(Duration),
}

/// A fault for one connection (one Session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionFault {
    /// Cut the TCP connection at once: no bye, no flush.
    Reset,
    /// Send bytes that are not a frame.
    Corrupt,
    /// Read nothing from the socket for this long.
    StallReads(Duration),
    /// Silently discard the next N frames received.
    DropNext(u32),
    /// Panic inside the Session's handler (Sessions are not restarted: its death watch
    /// reports the end to the Registry).
    Panic,
}

/// Any fault a node can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A fault for one supervised actor.
    Actor(ChildName, ActorFault),
    /// Also a fault of the Session actor, routed through the Registry.
    Connection(PeerAddr, ConnectionFault),
    /// The node's listening port closes for good (the Listener retires): peers can no
    /// longer connect, existing connections go on.
    ListenerGone,
}

/// Inject an actor fault (message for Registry, Listener, Console, Discovery).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Inject(pub ActorFault);

/// Why a fault could not be injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// No Session serves that peer.
    NotConnected(PeerAddr),
    /// The node has no such actor (the Console is the binary's; Discovery runs only on the
    /// LAN).
    NoSuchActor(ChildName),
    /// The node has stopped.
    NodeStopped,
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::NotConnected(peer) => write!(f, "not connected to {peer}"),
            InjectError::NoSuchActor(actor) => write!(f, "this node has no {actor} actor"),
            InjectError::NodeStopped => write!(f, "the node has stopped"),
        }
    }
}

impl std::error::Error for InjectError {}

/// Parses the console's fault commands (without the leading `!`):
/// `crash|panic ACTOR`, `stall ACTOR DURATION`, `reset|corrupt PEER`,
/// `stall-reads PEER DURATION`, `drop PEER N`, `panic-session PEER`, `listener-gone`.
pub fn parse_fault(text: &str) -> Result<Fault, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let duration = |w: Option<&&str>| -> Result<Duration, String> {
        let w = w.ok_or("a duration is missing (e.g. 2s or 500ms)")?;
        parse_duration(w)
    };
    let peer = |w: Option<&&str>| -> Result<PeerAddr, String> {
        w.ok_or_else(|| "an IP:PORT is missing".to_string())?
            .parse::<PeerAddr>()
            .map_err(|e| e.to_string())
    };
    let actor = |w: Option<&&str>| -> Result<ChildName, String> {
        w.ok_or_else(|| {
            "an actor is missing: registry, listener, console or discovery".to_string()
        })?
        .parse()
    };
    match words.first().copied() {
        Some("crash") => Ok(Fault::Actor(actor(words.get(1))?, ActorFault::Crash)),
        Some("panic") => Ok(Fault::Actor(actor(words.get(1))?, ActorFault::Panic)),
        Some("stall") => Ok(Fault::Actor(
            actor(words.get(1))?,
            ActorFault::Stall(duration(words.get(2))?),
        )),
        Some("reset") => Ok(Fault::Connection(
            peer(words.get(1))?,
            ConnectionFault::Reset,
        )),
        Some("corrupt") => Ok(Fault::Connection(
            peer(words.get(1))?,
            ConnectionFault::Corrupt,
        )),
        Some("stall-reads") => Ok(Fault::Connection(
            peer(words.get(1))?,
            ConnectionFault::StallReads(duration(words.get(2))?),
        )),
        Some("drop") => {
            let n = words
                .get(2)
                .and_then(|w| w.parse::<u32>().ok())
                .ok_or("drop needs a number of frames: !drop IP:PORT N")?;
            Ok(Fault::Connection(
                peer(words.get(1))?,
                ConnectionFault::DropNext(n),
            ))
        }
        Some("panic-session") => Ok(Fault::Connection(
            peer(words.get(1))?,
            ConnectionFault::Panic,
        )),
        Some("listener-gone") => Ok(Fault::ListenerGone),
        _ => Err(FAULT_HELP.to_string()),
    }
}

/// What the console prints for `!help` or a wrong fault command.
pub const FAULT_HELP: &str = "fault commands: !crash ACTOR, !panic ACTOR, !stall ACTOR 2s \
(ACTOR = registry, listener, console or discovery), !reset IP:PORT, !corrupt IP:PORT, \
!stall-reads IP:PORT 2s, !drop IP:PORT N, !panic-session IP:PORT, !listener-gone";

/// "500ms", "5s", "2m", or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 86400.0) {
        return Err(format!("'{text}' must be more than 0 and less than a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_console_fault_commands() {
        assert_eq!(
            parse_fault("panic registry"),
            Ok(Fault::Actor(ChildName::Registry, ActorFault::Panic))
        );
        assert_eq!(
            parse_fault("stall listener 250ms"),
            Ok(Fault::Actor(
                ChildName::Listener,
                ActorFault::Stall(Duration::from_millis(250))
            ))
        );
        assert_eq!(
            parse_fault("drop 127.0.0.1:9001 3"),
            Ok(Fault::Connection(
                "127.0.0.1:9001".parse().unwrap(),
                ConnectionFault::DropNext(3)
            ))
        );
        assert_eq!(
            parse_fault("crash discovery"),
            Ok(Fault::Actor(ChildName::Discovery, ActorFault::Crash))
        );
        assert!(parse_fault("panic everything").is_err());
        assert!(parse_fault("reset nowhere").is_err());
        assert!(parse_fault("stall registry").is_err());
        assert!(parse_fault("").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}
