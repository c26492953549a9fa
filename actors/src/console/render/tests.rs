//! Unit tests of render.rs: each text as the user reads it, with colour off.

use std::time::Duration;

use super::*;
use crate::child::ChildName;
use crate::ConnectError;

const PLAIN: Look = Look::plain();

fn addr(text: &str) -> PeerAddr {
    text.parse().unwrap()
}

fn peer(at: &str, name: Option<&str>, connected: bool, waiting: usize) -> PeerInfo {
    PeerInfo {
        addr: addr(at),
        name: name.map(String::from),
        connected,
        last_seen: None,
        waiting,
        key: None,
        also: Vec::new(),
    }
}

fn status(peers: Vec<PeerInfo>) -> Status {
    Status {
        name: "alice".into(),
        addr: "0.0.0.0:9000".parse().unwrap(),
        reachable: vec!["192.168.1.20:9000".parse().unwrap()],
        peers,
    }
}

#[test]
fn events_are_one_safe_line_each() {
    let bob = addr("127.0.0.1:9001");
    let line = |e: NodeEvent| event(&e, &PLAIN, "10:00:00");
    assert_eq!(
        line(NodeEvent::ChatReceived {
            from: bob,
            name: "bob".into(),
            id: 7,
            text: "hi\u{1b}[2J".into(),
            sent_at_ms: 0,
        }),
        "[10:00:00] bob (127.0.0.1:9001): hi\\u{1b}[2J"
    );
    assert_eq!(
        line(NodeEvent::Delivered {
            to: bob,
            id: 7,
            text: "hi".into(),
        }),
        "[10:00:00] delivered to 127.0.0.1:9001: hi"
    );
    assert_eq!(
        line(NodeEvent::DeliveryDelayed {
            to: bob,
            waiting: 2,
            reason: "connection refused".into(),
            retry_in: Duration::from_millis(1500),
        }),
        "[10:00:00] 127.0.0.1:9001 unreachable (connection refused): 2 message(s) \
         waiting, retrying in 1.5s"
    );
    assert_eq!(
        line(NodeEvent::DeliveryFailed {
            to: bob,
            id: 7,
            text: "hi".into(),
            reason: "gave up".into(),
        }),
        "[10:00:00] failed to deliver to 127.0.0.1:9001 (hi): gave up"
    );
    assert_eq!(
        line(NodeEvent::PeerConnected {
            peer: bob,
            name: "bob".into(),
            outbound: true,
        }),
        "[10:00:00] connected to bob (127.0.0.1:9001)"
    );
    assert_eq!(
        line(NodeEvent::PeerDisconnected {
            peer: bob,
            name: "bob".into(),
            reason: "quit".into(),
        }),
        "[10:00:00] disconnected from bob (127.0.0.1:9001): quit"
    );
    assert_eq!(
        line(NodeEvent::PeerDiscovered {
            peer: bob,
            name: "bob".into(),
        }),
        "[10:00:00] learned of peer bob (127.0.0.1:9001)"
    );
    assert_eq!(
        line(NodeEvent::ConnectionRefused {
            remote: "127.0.0.1:5555".parse().unwrap(),
            reason: "duplicate".into(),
        }),
        "[10:00:00] refused a connection from 127.0.0.1:5555: duplicate"
    );
}

#[test]
fn supervision_steps_read_as_sentences() {
    let line = |step| {
        event(
            &NodeEvent::Supervision {
                actor: ChildName::Registry,
                step,
            },
            &PLAIN,
            "10:00:00",
        )
    };
    assert_eq!(
        line(SupervisionStep::Failed {
            reason: "panic".into()
        }),
        "[10:00:00] supervisor: registry failed: panic"
    );
    assert_eq!(
        line(SupervisionStep::Restarting {
            restarts_in_window: 2
        }),
        "[10:00:00] supervisor: registry restarting (restart 2 in the current window)"
    );
    assert_eq!(
        line(SupervisionStep::Restarted),
        "[10:00:00] supervisor: registry restarted"
    );
    assert_eq!(
        line(SupervisionStep::Escalated {
            reason: "too many".into()
        }),
        "[10:00:00] supervisor: registry failed too often, node gives up: too many"
    );
}

#[test]
fn colour_only_adds_styling() {
    let bob = addr("127.0.0.1:9001");
    let chat = NodeEvent::ChatReceived {
        from: bob,
        name: "bob".into(),
        id: 1,
        text: "hi".into(),
        sent_at_ms: 0,
    };
    let coloured = event(&chat, &Look::coloured(), "10:00:00");
    assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    let stripped = String::from_utf8(strip_ansi(coloured.as_bytes())).unwrap();
    assert_eq!(stripped, event(&chat, &PLAIN, "10:00:00"));
}

/// Drops `ESC [ ... m` sequences.
fn strip_ansi(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b {
            while i < bytes.len() && bytes[i] != b'm' {
                i += 1;
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    out
}

#[test]
fn peer_listings_number_peers_from_one() {
    let peers = vec![
        peer("127.0.0.1:9001", Some("bob"), true, 0),
        peer("127.0.0.1:9002", None, false, 3),
    ];
    assert_eq!(
        outcome(&Outcome::Peers(Ok(peers.clone())), &PLAIN, None),
        "Known peers:\n  1. 127.0.0.1:9001  bob  connected\n  \
         2. 127.0.0.1:9002  ?  not connected, 3 message(s) waiting"
    );
    assert_eq!(
        outcome(&Outcome::Peers(Ok(vec![])), &PLAIN, None),
        "No known peers yet."
    );
    assert_eq!(
        outcome(&Outcome::ToDisconnect(peers[..1].to_vec()), &PLAIN, None),
        "Connected peers:\n  1. 127.0.0.1:9001  bob  connected"
    );
    assert_eq!(
        outcome(&Outcome::ToDisconnect(vec![]), &PLAIN, None),
        "Not connected to any peer."
    );
}

#[test]
fn the_status_line_counts_connected_peers_and_waiting_messages() {
    let peers = vec![
        peer("127.0.0.1:9001", Some("bob"), true, 1),
        peer("127.0.0.1:9002", None, false, 3),
    ];
    assert_eq!(
        outcome(&Outcome::Status(Ok(status(peers))), &PLAIN, None),
        "Status: alice at 192.168.1.20:9000 | connected peers: 1 (2 known) | messages waiting: 4"
    );
    assert_eq!(
        outcome(&Outcome::Menu(Ok(status(vec![]))), &PLAIN, None),
        "Status: alice at 192.168.1.20:9000 | connected peers: 0 (0 known) | messages waiting: 0"
    );
    assert_eq!(
        outcome(&Outcome::Menu(Err("stopped".into())), &PLAIN, None),
        ""
    );
}

#[test]
fn connect_outcomes_say_what_happened_to_each_peer() {
    let (a, b, c) = (
        addr("127.0.0.1:9001"),
        addr("127.0.0.1:9002"),
        addr("127.0.0.1:9003"),
    );
    let report = ConnectAllReport {
        already_connected: vec![c],
        attempts: vec![
            (a, Ok(ConnectOutcome::Connected)),
            (b, Err(ConnectError::Refused)),
        ],
        not_tried: 3,
    };
    let text = outcome(&Outcome::ConnectedAll(Ok(report)), &PLAIN, None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Connect to active peers:");
    assert_eq!(lines[1], "  127.0.0.1:9001: connected");
    assert!(lines[2].starts_with("  127.0.0.1:9002: failed: "), "{text}");
    assert_eq!(lines[3], "  127.0.0.1:9003: already connected");
    assert_eq!(
        lines[4],
        "  3 more not tried now (at most 64 at once): choose 3 again"
    );
    assert_eq!(
        outcome(
            &Outcome::ConnectedAll(Ok(ConnectAllReport::default())),
            &PLAIN,
            None
        ),
        "No known peers to connect to."
    );
    let one = |result| outcome(&Outcome::Connected { peer: a, result }, &PLAIN, None);
    assert_eq!(
        one(Ok(ConnectOutcome::Connected)),
        "Connected to 127.0.0.1:9001."
    );
    assert_eq!(
        one(Ok(ConnectOutcome::AlreadyConnected)),
        "Already connected to 127.0.0.1:9001."
    );
    assert_eq!(
        one(Err("refused".into())),
        "Cannot connect to 127.0.0.1:9001: refused."
    );
}

#[test]
fn sending_and_disconnecting_outcomes() {
    let bob = addr("127.0.0.1:9001");
    let sent = |result| {
        outcome(
            &Outcome::Sent {
                to: bob,
                shown: "hi  bob".into(),
                result,
            },
            &PLAIN,
            None,
        )
    };
    assert_eq!(sent(Ok(1)), "Sending to 127.0.0.1:9001: hi  bob");
    assert_eq!(
        sent(Err("too long\n".into())),
        "Cannot send to 127.0.0.1:9001: too long\\n."
    );
    let long = Outcome::Sent {
        to: bob,
        shown: "word ".repeat(40),
        result: Ok(1),
    };
    assert!(outcome(&long, &PLAIN, Some(60)).lines().count() > 1);
    assert_eq!(
        outcome(&Outcome::DisconnectedAll(Ok(0)), &PLAIN, None),
        "Not connected to any peer."
    );
    assert_eq!(
        outcome(&Outcome::DisconnectedAll(Ok(2)), &PLAIN, None),
        "Disconnected from 2 peer(s)."
    );
    let gone = |result| outcome(&Outcome::Disconnected { peer: bob, result }, &PLAIN, None);
    assert_eq!(gone(Ok(())), "Disconnected from 127.0.0.1:9001.");
    assert_eq!(
        gone(Err("not connected to 127.0.0.1:9001".into())),
        "not connected to 127.0.0.1:9001."
    );
    assert_eq!(
        outcome(&Outcome::Injected(Ok(())), &PLAIN, None),
        "Injected."
    );
    assert_eq!(
        outcome(&Outcome::Injected(Err("no".into())), &PLAIN, None),
        "Cannot inject: no"
    );
}

#[test]
fn history_lists_messages_both_ways() {
    assert_eq!(
        outcome(&Outcome::History(Ok(vec![]), vec![]), &PLAIN, None),
        "No messages yet."
    );
    let entries = vec![
        HistoryEntry::In {
            at_ms: 1_700_000_000_000,
            from: addr("127.0.0.1:9001"),
            name: "bob".into(),
            key: None,
            id: 1,
            text: "hi\r".into(),
            classic: false,
            cut: false,
        },
        HistoryEntry::Out {
            at_ms: 1_700_000_001_000,
            to: addr("127.0.0.1:9001"),
            id: 2,
            text: "hello".into(),
            classic: false,
        },
    ];
    let text = outcome(&Outcome::History(Ok(entries), vec![]), &PLAIN, None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "History:");
    assert!(lines[1].ends_with(" bob (127.0.0.1:9001): hi\\r"), "{text}");
    // Whom we wrote to, by name (from the conversation itself here).
    assert!(
        lines[2].ends_with(" you to bob (127.0.0.1:9001): hello"),
        "{text}"
    );
    // A peer never heard from: by the name the peer list knows, else by its address.
    let to_carol = vec![HistoryEntry::Out {
        at_ms: 1_700_000_001_000,
        to: addr("127.0.0.1:9002"),
        id: 3,
        text: "yo".into(),
        classic: false,
    }];
    let named = vec![(addr("127.0.0.1:9002"), "carol".to_string())];
    let text = outcome(&Outcome::History(Ok(to_carol.clone()), named), &PLAIN, None);
    assert!(
        text.ends_with(" you to carol (127.0.0.1:9002): yo"),
        "{text}"
    );
    let text = outcome(&Outcome::History(Ok(to_carol), vec![]), &PLAIN, None);
    assert!(text.ends_with(" you to 127.0.0.1:9002: yo"), "{text}");
}

#[test]
fn history_marks_classic_chats_as_their_live_lines_are() {
    let entries = vec![
        HistoryEntry::In {
            at_ms: 1_700_000_000_000,
            from: addr("127.0.0.1:5001"),
            name: "Team7".into(),
            key: None,
            id: 0,
            text: "hi alice".into(),
            classic: true,
            cut: true,
        },
        HistoryEntry::Out {
            at_ms: 1_700_000_001_000,
            to: addr("127.0.0.1:5001"),
            id: 4,
            text: "hi Team7".into(),
            classic: true,
        },
        HistoryEntry::Out {
            at_ms: 1_700_000_002_000,
            to: addr("127.0.0.1:5002"),
            id: 5,
            text: "to a classic peer never heard from".into(),
            classic: true,
        },
    ];
    let text = outcome(&Outcome::History(Ok(entries), vec![]), &PLAIN, None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].ends_with(
            " [classic, unencrypted] Team7 (127.0.0.1:5001): hi alice \
             (cut: the sender sent more than 64 KiB, or for too long)"
        ),
        "{text}"
    );
    assert!(
        lines[2].ends_with(" [classic, unencrypted] you to Team7 (127.0.0.1:5001): hi Team7"),
        "{text}"
    );
    assert!(
        lines[3].ends_with(
            " [classic, unencrypted] you to 127.0.0.1:5002: to a classic peer never heard from"
        ),
        "{text}"
    );
}

#[test]
fn history_never_names_a_chat_by_a_name_claimed_in_the_other_protocol() {
    // A classic sender claims any address and team name: nothing proves them. A classic
    // line "from" bob's address must not rename our encrypted chat to bob, and bob's name
    // must not label a classic chat to that address.
    let bob = addr("192.168.1.20:9001");
    let entries = vec![
        HistoryEntry::Out {
            at_ms: 1_700_000_000_000,
            to: bob,
            id: 1,
            text: "secret plan for bob".into(),
            classic: false,
        },
        HistoryEntry::In {
            at_ms: 1_700_000_001_000,
            from: bob,
            name: "mallory".into(),
            key: None,
            id: 0,
            text: "hi".into(),
            classic: true,
            cut: false,
        },
        HistoryEntry::In {
            at_ms: 1_700_000_002_000,
            from: bob,
            name: "bob".into(),
            key: None,
            id: 7,
            text: "hello".into(),
            classic: false,
            cut: false,
        },
        HistoryEntry::Out {
            at_ms: 1_700_000_003_000,
            to: bob,
            id: 8,
            text: "to the classic side".into(),
            classic: true,
        },
    ];
    let text = outcome(&Outcome::History(Ok(entries), vec![]), &PLAIN, None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].ends_with(" you to bob (192.168.1.20:9001): secret plan for bob"),
        "{text}"
    );
    assert!(
        lines[4].ends_with(
            " [classic, unencrypted] you to mallory (192.168.1.20:9001): to the classic side"
        ),
        "{text}"
    );
    // The peer list names peerchat peers only.
    let named = vec![(bob, "bob".to_string())];
    let classic_only = vec![HistoryEntry::Out {
        at_ms: 1_700_000_004_000,
        to: bob,
        id: 9,
        text: "x".into(),
        classic: true,
    }];
    let text = outcome(&Outcome::History(Ok(classic_only), named), &PLAIN, None);
    assert!(
        text.ends_with(" [classic, unencrypted] you to 192.168.1.20:9001: x"),
        "{text}"
    );
}

#[test]
fn quitting_says_what_is_left() {
    assert_eq!(quitting("bye", 0), "Quitting (bye)...");
    assert_eq!(
        quitting("interrupted", 2),
        "Quitting (interrupted): waiting for 2 message(s) to be acknowledged..."
    );
    assert_eq!(undelivered(0, true, 0, &PLAIN), None);
    assert_eq!(
        undelivered(1, false, 0, &PLAIN).as_deref(),
        Some("Warning: 1 message(s) were not delivered.")
    );
    assert_eq!(
        undelivered(3, true, 0, &PLAIN).as_deref(),
        Some(
            "Warning: 3 message(s) not delivered yet; they are kept in the data \
             directory and sent at the next start."
        )
    );
}

#[test]
fn the_menu_is_the_standard_one_with_a_bold_title() {
    assert_eq!(menu(&PLAIN), MENU);
    let coloured = menu(&Look::coloured());
    assert!(coloured.starts_with('\u{1b}'));
    assert!(coloured.ends_with("0. Quit"));
}

#[test]
fn chats_that_could_not_be_saved_are_never_said_to_be_kept() {
    let said = undelivered(3, true, 2, &PLAIN).unwrap();
    assert!(
        said.contains("2 of them could not be saved and are lost"),
        "{said}"
    );
}
