//! The classic protocol's texts as plain functions: which protocol a connection speaks (its
//! first byte), what a received text says, the text of a message we send, the pieces a long
//! text is split into, and the replies. No sockets: unit-tested below.

use std::net::IpAddr;
use std::time::Duration;

use crate::peer::PeerAddr;

/// A classic receiver reads once, up to this many bytes: a longer message would be cut.
pub const CLASSIC_READ_BYTES: usize = 1024;
/// Most bytes we read from one classic connection; the rest is dropped.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// A classic sender has finished when it pauses this long (it sends no end marker).
pub const SENDER_PAUSE: Duration = Duration::from_millis(200);
/// The classic programs' timeout: to connect, and to wait for the reply.
pub const CLASSIC_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `IP:PORT` our side of a connection can have, per address family.
const LONGEST_V4_ADDR: usize = "255.255.255.255:65535".len();
const LONGEST_V6_ADDR: usize = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".len();

/// What the first byte of an inbound connection says it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstByte {
    /// 0: the high byte of a peerchat frame's length prefix.
    Peerchat,
    /// Printable ASCII (or ASCII whitespace, which the receiver strips): a classic text.
    Classic,
    /// Anything else: neither; closed quietly.
    Unknown,
}

/// Tells the protocols apart by the first byte a peer sends.
pub fn classify_first_byte(byte: u8) -> FirstByte {
    match byte {
        0 => FirstByte::Peerchat,
        b' '..=b'~' | b'\t' | b'\n' | b'\r' => FirstByte::Classic,
        _ => FirstByte::Unknown,
    }
}

/// What one classic connection said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `IP:PORT TEAM MESSAGE`.
    Message {
        /// The address the sender claims (its IP as it believes it is, its listening port).
        claimed: PeerAddr,
        /// Its team name.
        team: String,
        /// The text (`exit` means it leaves).
        text: String,
    },
    /// `IP:PORT CONNECT_REQUEST`.
    ConnectRequest {
        /// The address the sender claims.
        claimed: PeerAddr,
    },
    /// `IP:PORT DISCONNECTED`.
    Disconnected {
        /// The address the sender claims.
        claimed: PeerAddr,
    },
    /// Not the classic format; `reason` says why, for the user.
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

/// Reads what a classic sender sent (`raw`, at most [`MAX_INBOUND_BYTES`]; `cut` if it sent
/// more, so that a character split at the cut is dropped, not refused). Strips whitespace
/// and splits on the first two spaces, as the assignment's receivers do.
pub fn parse_inbound(raw: &[u8], cut: bool) -> Inbound {
    let invalid = |reason: String| Inbound::Invalid { reason };
    let text = match std::str::from_utf8(raw) {
        Ok(text) => text,
        // Cut in the middle of a character: keep the whole ones.
        Err(err) if cut && err.error_len().is_none() => {
            std::str::from_utf8(&raw[..err.valid_up_to()]).unwrap_or_default()
        }
        Err(err) => {
            return invalid(format!(
                "not UTF-8 text (bad byte at offset {})",
                err.valid_up_to()
            ))
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return invalid("empty message".into());
    }
    let parts: Vec<&str> = text.splitn(3, ' ').collect();
    let claimed = |addr: &str| {
        addr.parse::<PeerAddr>()
            .map_err(|_| format!("'{}' is not IP:PORT", clip(addr, 64)))
    };
    match parts.as_slice() {
        [addr, team, text] => match claimed(addr) {
            Ok(claimed) => Inbound::Message {
                claimed,
                team: team.to_string(),
                text: text.to_string(),
            },
            Err(why) => invalid(why),
        },
        [addr, word @ ("CONNECT_REQUEST" | "DISCONNECTED")] => match claimed(addr) {
            Ok(claimed) if *word == "CONNECT_REQUEST" => Inbound::ConnectRequest { claimed },
            Ok(claimed) => Inbound::Disconnected { claimed },
            Err(why) => invalid(why),
        },
        _ => invalid(format!(
            "expected 'IP:PORT TEAM MESSAGE', got '{}'",
            clip(text, 64)
        )),
    }
}

/// At most `max` bytes of `text`, whole characters, with `…` if cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}…", &text[..floor_char_boundary(text, max)])
}

/// The largest index ≤ `at` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The IP a classic peer is known by: the one it claims, unless it claims a loopback alias
/// (a host name's `127.0.1.1`) or no address at all while the connection came from elsewhere;
/// then the connection's source IP, which is how we can reach it.
pub fn shown_ip(claimed: IpAddr, source: IpAddr) -> IpAddr {
    let source = PeerAddr::from_ip_port(source, 1).ip();
    if (claimed.is_loopback() || claimed.is_unspecified()) && !source.is_loopback() {
        source
    } else {
        claimed
    }
}

/// Our name as a classic team name: one word (the receiver splits on spaces).
pub fn team_name(name: &str) -> String {
    let team: String = name
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if team.is_empty() {
        "peerchat".into()
    } else {
        team
    }
}

/// The whole text of one classic message: `OUR_IP:OUR_PORT TEAM TEXT`.
pub fn message(our_addr: PeerAddr, team: &str, text: &str) -> String {
    format!("{our_addr} {team} {text}")
}

/// How many bytes of text fit in one message to `to` from `team`, whatever our address on
/// that connection turns out to be.
pub fn piece_budget(to: &PeerAddr, team: &str) -> usize {
    let addr = if to.ip().is_ipv4() {
        LONGEST_V4_ADDR
    } else {
        LONGEST_V6_ADDR
    };
    CLASSIC_READ_BYTES.saturating_sub(addr + 1 + team.len() + 1)
}

/// Splits `text` into pieces of at most `budget` bytes, in order, each whole UTF-8. A cut
/// falls on a space when there is one in the second half of the piece (that space is dropped:
/// the receiver strips it anyway); otherwise between two characters. Whitespace around the
/// pieces is dropped for the same reason. `budget` must hold any one character (4 bytes).
pub fn split_text(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(4);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.len() <= budget {
            pieces.push(rest.to_string());
            break;
        }
        let end = floor_char_boundary(rest, budget);
        // A space right after the piece is as good a cut as one inside it.
        let window = &rest[..floor_char_boundary(rest, end + 1)];
        let (piece, next) = match window.rfind(char::is_whitespace) {
            Some(space) if space >= end / 2 => (&rest[..space], &rest[space..]),
            _ => (&rest[..end], &rest[end..]),
        };
        let piece = piece.trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_string());
        }
        rest = next.trim_start();
    }
    pieces
}

/// Our reply to a message: `[ACK] Message received from PORT`, our listening port.
pub fn ack_reply(listen_port: u16) -> String {
    format!("[ACK] Message received from {listen_port}")
}

/// Our reply to `CONNECT_REQUEST`.
pub fn connect_reply(accepted: bool) -> &'static str {
    if accepted {
        "CONNECTED"
    } else {
        "REJECTED"
    }
}

/// Whether a classic receiver's reply says it got the message.
pub fn is_ack(reply: &[u8]) -> bool {
    String::from_utf8_lossy(reply).trim().starts_with("[ACK]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(text: &str) -> PeerAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_byte_tells_the_protocols_apart() {
        assert_eq!(classify_first_byte(0), FirstByte::Peerchat);
        assert_eq!(classify_first_byte(b'1'), FirstByte::Classic);
        assert_eq!(classify_first_byte(b'l'), FirstByte::Classic);
        assert_eq!(classify_first_byte(b' '), FirstByte::Classic);
        assert_eq!(classify_first_byte(b'\n'), FirstByte::Classic);
        assert_eq!(classify_first_byte(1), FirstByte::Unknown);
        assert_eq!(classify_first_byte(0x7f), FirstByte::Unknown);
        assert_eq!(classify_first_byte(0xff), FirstByte::Unknown);
    }

    #[test]
    fn a_message_splits_on_the_first_two_spaces() {
        let parsed = parse_inbound(b"  127.0.1.1:5000 Team7 hello  there, you \n", false);
        assert_eq!(
            parsed,
            Inbound::Message {
                claimed: addr("127.0.1.1:5000"),
                team: "Team7".into(),
                text: "hello  there, you".into(),
            }
        );
    }

    #[test]
    fn connect_request_and_disconnected_are_two_words() {
        assert_eq!(
            parse_inbound(b"10.0.0.2:6000 CONNECT_REQUEST", false),
            Inbound::ConnectRequest {
                claimed: addr("10.0.0.2:6000")
            }
        );
        assert_eq!(
            parse_inbound(b"10.0.0.2:6000 DISCONNECTED\n", false),
            Inbound::Disconnected {
                claimed: addr("10.0.0.2:6000")
            }
        );
        // With a third word it is a message from a team of that name.
        assert!(matches!(
            parse_inbound(b"10.0.0.2:6000 DISCONNECTED now", false),
            Inbound::Message { .. }
        ));
    }

    #[test]
    fn what_is_not_the_format_is_invalid_with_a_reason() {
        let reason = |raw: &[u8]| match parse_inbound(raw, false) {
            Inbound::Invalid { reason } => reason,
            other => panic!("{raw:?} parsed as {other:?}"),
        };
        assert!(reason(b"nospaces").starts_with("expected 'IP:PORT TEAM MESSAGE'"));
        assert!(reason(b"1.2.3.4:5 hello").starts_with("expected"));
        assert_eq!(reason(b"   \n"), "empty message");
        assert_eq!(reason(b"bob team hi"), "'bob' is not IP:PORT");
        assert_eq!(reason(b"1.2.3.4:0 team hi"), "'1.2.3.4:0' is not IP:PORT");
        assert!(reason(b"1.2.3.4:5 team \xff\xfe").starts_with("not UTF-8"));
        // A long bad text is quoted clipped, not whole.
        assert!(reason(&[b'a'; 5000]).len() < 200);
    }

    #[test]
    fn a_character_cut_by_the_read_limit_is_dropped() {
        let mut raw = b"1.2.3.4:5 team caf".to_vec();
        raw.extend_from_slice(&"é".as_bytes()[..1]);
        assert!(matches!(
            parse_inbound(&raw, false),
            Inbound::Invalid { .. }
        ));
        assert_eq!(
            parse_inbound(&raw, true),
            Inbound::Message {
                claimed: addr("1.2.3.4:5"),
                team: "team".into(),
                text: "caf".into()
            }
        );
    }

    #[test]
    fn a_loopback_alias_from_elsewhere_is_the_connection_source() {
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        let alias: IpAddr = "127.0.1.1".parse().unwrap();
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(shown_ip(alias, lan), lan);
        assert_eq!(shown_ip("0.0.0.0".parse().unwrap(), lan), lan);
        assert_eq!(shown_ip(alias, local), alias);
        let other: IpAddr = "192.168.1.30".parse().unwrap();
        assert_eq!(shown_ip(other, lan), other);
        // An IPv4-mapped source counts as what it maps.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(shown_ip(alias, mapped), alias);
    }

    #[test]
    fn the_message_and_the_replies() {
        assert_eq!(
            message(addr("10.0.0.1:9000"), &team_name(" Team Rocket "), "hi"),
            "10.0.0.1:9000 Team_Rocket hi"
        );
        assert_eq!(team_name("  "), "peerchat");
        assert_eq!(ack_reply(9000), "[ACK] Message received from 9000");
        assert!(is_ack(b"[ACK] Message received from 5000"));
        assert!(is_ack(b"\n[ACK] whatever"));
        assert!(!is_ack(b"CONNECTED"));
        assert!(!is_ack(b""));
        assert_eq!(connect_reply(true), "CONNECTED");
        assert_eq!(connect_reply(false), "REJECTED");
    }

    #[test]
    fn a_whole_message_fits_the_receivers_read() {
        let team = team_name("a-rather-long-team-name");
        let to = addr("10.0.0.1:9000");
        let budget = piece_budget(&to, &team);
        let text = "x".repeat(budget);
        let longest = message(addr("255.255.255.255:65535"), &team, &text);
        assert_eq!(longest.len(), CLASSIC_READ_BYTES);
        let v6 = piece_budget(&addr("[::1]:9000"), &team);
        let longest = message(
            addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            &team,
            &"x".repeat(v6),
        );
        assert_eq!(longest.len(), CLASSIC_READ_BYTES);
    }

    #[test]
    fn a_long_text_splits_in_order_into_whole_characters() {
        // No spaces: cut between characters; 2- and 3-byte characters straddle the limits.
        let text: String = (0..1500).map(|i| ["é", "€", "a"][i % 3]).collect();
        let pieces = split_text(&text, 100);
        assert!(pieces.iter().all(|p| p.len() <= 100 && !p.is_empty()));
        assert_eq!(pieces.concat(), text);
        assert!(pieces.len() >= text.len() / 100);
        assert_eq!(split_text("short", 100), vec!["short"]);
        assert!(split_text("   ", 100).is_empty());
    }

    #[test]
    fn a_cut_prefers_a_space_and_drops_it() {
        let text = "aaaa bbbb cccc dddd";
        let pieces = split_text(text, 10);
        assert_eq!(pieces, vec!["aaaa bbbb", "cccc dddd"]);
        // A space just after the limit is used too.
        assert_eq!(split_text("aaaa bbbb", 4), vec!["aaaa", "bbbb"]);
        // No space in the second half: a hard cut.
        assert_eq!(
            split_text("a bbbbbbbbbbbb", 6),
            vec!["a bbbb", "bbbbbb", "bb"]
        );
    }
}
