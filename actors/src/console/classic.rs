//! Classic peers at the Console (issue 15): the lines for their events, their block under
//! menu 2 / `/peers`, and a chat to one (`classic:IP:PORT`). Pure but for `send_classic`;
//! kept apart from render.rs and apply.rs so that those change apart.

use actix::prelude::*;

use super::command::Back;
use super::look::Look;
use super::render::Outcome;
use super::Console;
use crate::classic::peers::ClassicPeerInfo;
use crate::classic::ClassicEvent;
use crate::peer::PeerAddr;
use crate::sanitize::visible;

/// How a classic chat is marked: the protocol has no keys and no encryption.
pub const MARK: &str = "[classic, unencrypted]";

/// After a classic chat read only in part: its sender sent more than 64 KiB, or went on past
/// the connection's time limit (live and in /history).
pub(super) fn cut_note(cut: bool, look: &Look) -> String {
    if cut {
        format!(
            " {}",
            look.warn("(cut: the sender sent more than 64 KiB, or for too long)")
        )
    } else {
        String::new()
    }
}

/// One line for a classic event, stamped with `time` (already styled by render.rs).
pub fn event(event: &ClassicEvent, look: &Look, time: &str) -> String {
    let who = |team: &str, addr: &PeerAddr| {
        format!("{} ({})", look.name(&visible(team)), look.addr(addr))
    };
    let mark = look.dim(MARK);
    match event {
        ClassicEvent::Chat {
            from,
            team,
            text,
            cut,
        } => {
            let cut = cut_note(*cut, look);
            format!("{time} {mark} {}: {}{cut}", who(team, from), visible(text))
        }
        ClassicEvent::ConnectRequest { from, accepted } => {
            let answer = if *accepted {
                look.good("accepted (CONNECTED)")
            } else {
                look.warn("rejected (REJECTED; --classic-accept no)")
            };
            format!(
                "{time} {mark} {} asked to connect: {answer}",
                look.addr(from)
            )
        }
        ClassicEvent::Left { from, team, said } => {
            let who = match team {
                Some(team) => who(team, from),
                None => look.addr(from),
            };
            format!(
                "{time} {mark} {who} {} ({})",
                look.warn("left"),
                visible(said)
            )
        }
        ClassicEvent::Invalid { remote, reason } => format!(
            "{time} {mark} [RECEIVED] {} from {}: {}",
            look.bad("Invalid format"),
            look.addr(remote),
            visible(reason)
        ),
    }
}

/// The block under the peer list, or `None` when no classic peer is known.
pub fn listing(peers: &[ClassicPeerInfo], look: &Look) -> Option<String> {
    if peers.is_empty() {
        return None;
    }
    let mut text = format!("Classic peers {MARK}:");
    for peer in peers {
        let team = match &peer.team {
            Some(team) => look.name(&visible(team)),
            None => "?".into(),
        };
        let state = if peer.gone {
            look.warn("left")
        } else if peer.connected {
            look.good("connected")
        } else {
            look.dim("classic")
        };
        let waiting = match peer.waiting {
            0 => String::new(),
            n => format!(", {n} message(s) waiting"),
        };
        text.push_str(&format!(
            "\n  classic:{}  {team}  {state}{waiting}",
            look.addr(peer.addr)
        ));
    }
    Some(text)
}

/// Two optional blocks under the peer list, one after the other.
pub fn notes(first: Option<String>, second: Option<String>) -> Option<String> {
    match (first, second) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    }
}

impl Console {
    /// A chat to a classic peer: queued by the Registry like any chat (its id at once, the
    /// ack later as an event), sent in the classic protocol.
    pub(super) fn send_classic(
        &mut self,
        to: PeerAddr,
        text: String,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        let node = self.node.clone();
        let shown = visible(&text).into_owned();
        let sending = async move {
            let result = node.send_classic(to, text).await.map_err(|e| e.to_string());
            Outcome::Sent { to, shown, result }
        };
        self.run(back, sending, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> PeerAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_classic_chat_is_marked_and_sanitised() {
        let chat = ClassicEvent::Chat {
            from: addr("10.0.0.2:5000"),
            team: "Team7".into(),
            text: "hi\u{1b}[31m there".into(),
            cut: false,
        };
        let line = event(&chat, &Look::plain(), "[12:00:00]");
        assert!(line.starts_with("[12:00:00] [classic, unencrypted] Team7 (10.0.0.2:5000): hi"));
        assert!(!line.contains('\u{1b}'), "{line:?}");
        let invalid = ClassicEvent::Invalid {
            remote: "10.0.0.2:41000".parse().unwrap(),
            reason: "not UTF-8 text".into(),
        };
        let line = event(&invalid, &Look::plain(), "[t]");
        assert!(line.contains("[RECEIVED] Invalid format from 10.0.0.2:41000: not UTF-8 text"));
        let rejected = ClassicEvent::ConnectRequest {
            from: addr("10.0.0.2:5000"),
            accepted: false,
        };
        assert!(event(&rejected, &Look::plain(), "[t]").contains("rejected (REJECTED"));
    }

    #[test]
    fn classic_ip_port_is_understood_in_menu_1_and_msg() {
        use crate::console::command::{parse, Command, Known, Parsed, Prompt};
        let known = Known::default();
        let to = addr("10.0.0.2:5000");
        // Menu 1 hands the name to the resolver (names.rs), which knows classic:.
        assert_eq!(
            parse(Prompt::SendTo, "classic:10.0.0.2:5000", &known),
            Parsed::Run(
                crate::console::command::Command::ToPeer {
                    name: "classic:10.0.0.2:5000".into(),
                    action: crate::console::command::PeerAction::AskText
                },
                Back::Menu
            )
        );
        assert_eq!(
            parse(Prompt::SendClassicText { to }, "hi there", &known),
            Parsed::Run(
                Command::SendClassic {
                    to,
                    text: "hi there".into()
                },
                Back::Menu
            )
        );
        assert_eq!(
            parse(Prompt::Menu, "/msg classic:10.0.0.2:5000 hi you", &known),
            Parsed::Run(
                Command::SendClassic {
                    to,
                    text: "hi you".into()
                },
                Back::Prompt
            )
        );
        // Without the prefix: an ordinary chat (the Registry knows if the peer is classic).
        assert!(matches!(
            parse(Prompt::Menu, "/msg 10.0.0.2:5000 hi", &known),
            Parsed::Run(Command::Send { .. }, _)
        ));
        for bad in ["classic:bob", "classic:10.0.0.2", "classic:"] {
            assert!(
                matches!(
                    parse(Prompt::SendTo, bad, &known),
                    Parsed::Retry(_, Prompt::SendTo)
                ),
                "{bad}"
            );
            let line = format!("/msg {bad} hi");
            assert!(
                matches!(parse(Prompt::Menu, &line, &known), Parsed::Wrong(..)),
                "{bad}"
            );
        }
    }

    #[test]
    fn classic_peers_are_listed_as_classic() {
        assert_eq!(listing(&[], &Look::plain()), None);
        let peers = [ClassicPeerInfo {
            addr: addr("10.0.0.2:5000"),
            team: Some("Team7".into()),
            last_seen: None,
            gone: false,
            connected: false,
            waiting: 2,
        }];
        let text = listing(&peers, &Look::plain()).unwrap();
        assert_eq!(
            text,
            "Classic peers [classic, unencrypted]:\n  classic:10.0.0.2:5000  Team7  classic, 2 message(s) waiting"
        );
        assert_eq!(notes(None, Some("b".into())).as_deref(), Some("b"));
        assert_eq!(
            notes(Some("a".into()), Some("b".into())).as_deref(),
            Some("a\nb")
        );
    }
}
