//! What the Console prints about who peers are: the loud warning when a pinned peer shows
//! another key, a dial that met the wrong key, `/whois` and `/trust`, and the fingerprint
//! beside each peer in menu 2. Pure, like render.rs, which calls it.

use super::command::Command;
use super::look::Look;
use crate::events::NodeEvent;
use crate::key::{Fingerprint, PeerKey};
use crate::peer::PeerInfo;
use crate::registry::{KeyChange, TrustError, WhoisReport};
use crate::sanitize::visible;

/// What `/whois` or `/trust` brought back.
#[derive(Debug)]
pub enum Answer {
    /// `/whois PEER`.
    Whois(Result<WhoisReport, TrustError>),
    /// `/trust PEER`.
    Trusted(Result<KeyChange, TrustError>),
}

/// `/whois PEER` or `/trust PEER` (`shortcut` is which), or the usage line.
pub fn command(shortcut: &str, rest: &str) -> Result<Command, String> {
    let peer = rest.trim();
    if peer.is_empty() {
        return Err(format!(
            "Usage: {shortcut} PEER (a name, a number in the list, a fingerprint or IP:PORT)"
        ));
    }
    Ok(match shortcut {
        "/trust" => Command::Trust(peer.to_string()),
        _ => Command::Whois(peer.to_string()),
    })
}

/// The first two groups of a fingerprint: enough to tell peers apart in a list (compare the
/// whole one with `/whois`).
pub fn short(fingerprint: &Fingerprint) -> &str {
    fingerprint
        .as_str()
        .get(..9)
        .unwrap_or(fingerprint.as_str())
}

/// What follows a peer's line in menu 2: its short fingerprint and its other addresses.
pub fn peer_suffix(peer: &PeerInfo, look: &Look) -> String {
    let mut text = String::new();
    if let Some(key) = peer.key.as_ref().map(PeerKey::fingerprint) {
        text.push_str(&format!("  {}", look.dim(format!("key {}", short(&key)))));
    }
    if !peer.also.is_empty() {
        let also: Vec<String> = peer.also.iter().map(ToString::to_string).collect();
        text.push_str(&format!("  (also {})", also.join(", ")));
    }
    text
}

/// The lines for a key event, or `None` for any other event.
pub fn event(event: &NodeEvent, look: &Look, time: &str) -> Option<String> {
    match event {
        NodeEvent::KeyChanged {
            peer,
            name,
            pinned_by,
            pinned,
            presented,
        } => Some(look.bad(format!(
            "{time} WARNING: THE KEY OF {} ({peer}) HAS CHANGED.\n\
             \x20 {} is pinned to key {pinned}; this peer proved key {presented}.\n\
             \x20 Someone may be impersonating it, or it was reinstalled. Its session was refused.\n\
             \x20 Compare the new fingerprint with its owner, then type /trust {} to accept it.",
            visible(name),
            visible(pinned_by),
            trust_selector(name, peer),
        ))),
        NodeEvent::KeyMismatch {
            peer,
            source,
            expected,
            presented,
        } => Some(look.bad(format!(
            "{time} warning: {peer} proved key {presented}, not {expected} ({}); not connected",
            visible(source)
        ))),
        _ => None,
    }
}

/// What to type after `/trust`: the name, unless it is empty or has spaces.
fn trust_selector(name: &str, peer: &crate::peer::PeerAddr) -> String {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        peer.to_string()
    } else {
        visible(name).into_owned()
    }
}

/// What `/whois` or `/trust` says.
pub fn answer(answer: &Answer, look: &Look) -> String {
    match answer {
        Answer::Whois(Ok(report)) => whois(report, look),
        Answer::Trusted(Ok(change)) => format!(
            "{} the new key of {}: {}. Connecting...",
            look.good("Trusted"),
            visible(&change.name),
            change.presented.fingerprint()
        ),
        Answer::Whois(Err(err)) | Answer::Trusted(Err(err)) => {
            look.bad(format!("{}.", visible(&err.to_string())))
        }
    }
}

fn whois(report: &WhoisReport, look: &Look) -> String {
    let mut text = format!(
        "{} {}\n  key {}  ({}, {})",
        look.heading("Peer"),
        look.name(&visible(&report.name)),
        report.fingerprint,
        if report.pinned {
            "pinned"
        } else {
            "not pinned"
        },
        if report.connected {
            "connected"
        } else {
            "not connected"
        },
    );
    for known in &report.addrs {
        let worked = match known.last_worked {
            Some(at) => {
                let at = chrono::DateTime::<chrono::Local>::from(at);
                format!(", last worked {}", at.format("%Y-%m-%d %H:%M:%S"))
            }
            None => String::new(),
        };
        text.push_str(&format!(
            "\n  {}  {}{worked}",
            look.addr(known.addr),
            visible(&known.how)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::WhoisAddress;

    fn plain() -> Look {
        Look::plain()
    }

    #[test]
    fn whois_and_trust_need_a_peer() {
        assert_eq!(command("/whois", " bob "), Ok(Command::Whois("bob".into())));
        assert_eq!(command("/trust", "2"), Ok(Command::Trust("2".into())));
        let usage = command("/trust", "  ").unwrap_err();
        assert!(usage.starts_with("Usage: /trust PEER"), "{usage}");
    }

    #[test]
    fn a_key_change_is_a_loud_warning_with_both_fingerprints_and_what_to_type() {
        let event = NodeEvent::KeyChanged {
            peer: "127.0.0.1:9001".parse().unwrap(),
            name: "bob".into(),
            pinned_by: "name \"bob\"".into(),
            pinned: PeerKey::from_bytes([1; 32]).fingerprint(),
            presented: PeerKey::from_bytes([2; 32]).fingerprint(),
        };
        let text = super::event(&event, &plain(), "12:00:00").unwrap();
        assert!(text.starts_with("12:00:00 WARNING: THE KEY OF bob (127.0.0.1:9001) HAS CHANGED."));
        assert!(text.contains(PeerKey::from_bytes([1; 32]).fingerprint().as_str()));
        assert!(text.contains(PeerKey::from_bytes([2; 32]).fingerprint().as_str()));
        assert!(text.contains("type /trust bob to accept it"));
    }

    #[test]
    fn a_dial_that_met_the_wrong_key_says_where_the_expectation_came_from() {
        let event = NodeEvent::KeyMismatch {
            peer: "10.0.0.9:9001".parse().unwrap(),
            source: "introduced by mallory".into(),
            expected: PeerKey::from_bytes([0; 32]).fingerprint(),
            presented: PeerKey::from_bytes([0; 32]).fingerprint(),
        };
        assert_eq!(
            super::event(&event, &plain(), "12:00:00").unwrap(),
            "12:00:00 warning: 10.0.0.9:9001 proved key csm7-nbfr-cayq-ev4f-r65r, not \
             csm7-nbfr-cayq-ev4f-r65r (introduced by mallory); not connected"
        );
        let other = NodeEvent::PeerDiscovered {
            peer: "10.0.0.9:9001".parse().unwrap(),
            name: "x".into(),
        };
        assert_eq!(super::event(&other, &plain(), "12:00:00"), None);
    }

    #[test]
    fn whois_shows_the_key_and_each_address_with_how_it_was_learned() {
        let report = WhoisReport {
            name: "bob".into(),
            fingerprint: PeerKey::from_bytes([0; 32]).fingerprint(),
            addrs: vec![WhoisAddress {
                addr: "10.0.0.2:9001".parse().unwrap(),
                how: "introduced by carol".into(),
                last_worked: None,
            }],
            pinned: false,
            connected: false,
        };
        assert_eq!(
            answer(&Answer::Whois(Ok(report)), &plain()),
            "Peer bob\n  key csm7-nbfr-cayq-ev4f-r65r  (not pinned, not connected)\n  \
             10.0.0.2:9001  introduced by carol"
        );
    }

    #[test]
    fn menu_2_shows_a_short_fingerprint_and_the_other_addresses() {
        let peer = PeerInfo {
            addr: "10.0.0.2:9001".parse().unwrap(),
            name: Some("bob".into()),
            connected: true,
            last_seen: None,
            waiting: 0,
            key: Some(PeerKey::from_bytes([0; 32])),
            also: vec!["10.1.0.2:9001".parse().unwrap()],
        };
        assert_eq!(
            peer_suffix(&peer, &plain()),
            "  key csm7-nbfr  (also 10.1.0.2:9001)"
        );
    }
}
