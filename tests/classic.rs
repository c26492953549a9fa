//! Classic peers (issue 15): a peer of the class assignment, written here in a few lines of
//! std TCP as its programs behave, chats both ways with a real node on 127.0.0.1, and bad
//! classic input never hurts the node.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{start_with, WAIT};
use peerchat_actors::classic::peers::ClassicPeerInfo;
use peerchat_actors::classic::ClassicEvent;
use peerchat_actors::limits::Rate;
use peerchat_actors::store::HistoryEntry;
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent, PeerAddr};

// ---- the classic peer, as the assignment's programs are ----

/// The assignment's sender: connect (5 s), send the text, read one reply of up to 1024
/// bytes, close. Answers the reply ("" if the receiver closed without one).
fn classic_send_blocking(to: SocketAddr, text: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(text).expect("sends");
    let mut reply = [0u8; 1024];
    let n = stream.read(&mut reply).unwrap_or(0);
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

async fn classic_send(node: &Node, text: impl Into<Vec<u8>>) -> String {
    let to = node.listen_addr();
    let text = text.into();
    tokio::task::spawn_blocking(move || classic_send_blocking(to, &text))
        .await
        .unwrap()
}

/// The assignment's receiver: for each connection, reads once (up to 1024 bytes), passes the
/// text on, replies `reply` (its ACK by default) and closes.
struct ClassicReceiver {
    addr: PeerAddr,
    got: mpsc::Receiver<Vec<u8>>,
}

impl ClassicReceiver {
    fn start() -> ClassicReceiver {
        Self::replying(None)
    }

    fn replying(reply: Option<&'static str>) -> ClassicReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, got) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).unwrap_or(0);
                let ack = format!("[ACK] Message received from {}", addr.port());
                let _ = conn.write_all(reply.unwrap_or(&ack).as_bytes());
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        ClassicReceiver {
            addr: PeerAddr::new(addr),
            got,
        }
    }

    /// The next message it read, within `WAIT`.
    async fn next(&self) -> Vec<u8> {
        self.next_within(WAIT).await.expect("a classic message")
    }

    async fn next_within(&self, wait: Duration) -> Option<Vec<u8>> {
        let until = Instant::now() + wait;
        loop {
            match self.got.try_recv() {
                Ok(text) => return Some(text),
                Err(_) if Instant::now() >= until => return None,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
}

/// A classic message split as the receivers split it: `IP:PORT`, `TEAM`, `MESSAGE`.
fn split3(raw: &[u8]) -> (String, String, String) {
    let text = std::str::from_utf8(raw)
        .expect("whole UTF-8")
        .trim()
        .to_string();
    let mut parts = text.splitn(3, ' ').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    (next(), next(), next())
}

// ---- waiting for events ----

async fn classic_event(events: &mut EventStream, what: &str) -> ClassicEvent {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::Classic(event) => Some(event.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn classic_peers(node: &Node) -> Vec<ClassicPeerInfo> {
    node.classic_peers().await.expect("node answers")
}

fn local(name: &str) -> NodeConfig {
    NodeConfig::local(name)
}

// ---- chats both ways ----

#[actix_rt::test]
async fn a_classic_peer_writes_is_acked_shown_and_answered_in_classic() {
    let (node, mut events) = start_with(local("alice")).await;
    let classic = ClassicReceiver::start();
    let from = classic.addr;

    let reply = classic_send(&node, format!("{from} Team7 hello there, alice\n")).await;
    assert_eq!(
        reply,
        format!("[ACK] Message received from {}", node.listen_addr().port())
    );
    let event = classic_event(&mut events, "the chat").await;
    assert_eq!(
        event,
        ClassicEvent::Chat {
            from,
            team: "Team7".into(),
            text: "hello there, alice".into(),
            cut: false
        }
    );
    // A known classic peer, never a peerchat one (so never in a `peers` frame).
    let peers = classic_peers(&node).await;
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].addr, peers[0].team.as_deref()),
        (from, Some("Team7"))
    );
    assert!(node.peers().await.unwrap().iter().all(|p| p.addr != from));

    // An ordinary send_chat to it goes classic: it wrote to us in classic.
    let id = node.send_chat(from, "hi Team7").await.unwrap();
    let (addr, team, text) = split3(&classic.next().await);
    assert_eq!(addr, format!("127.0.0.1:{}", node.listen_addr().port()));
    assert_eq!((team.as_str(), text.as_str()), ("alice", "hi Team7"));
    assert_eq!(common::delivered(&mut events, id).await, from);

    // And peerchat never dials it with its own protocol.
    let err = node.connect(from).await.unwrap_err();
    assert!(err.to_string().contains("classic peer"), "{err}");
    assert_eq!(classic.next_within(Duration::from_millis(300)).await, None);
    node.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn a_long_text_goes_as_several_whole_messages_in_order() {
    let (node, mut events) = start_with(local("alice")).await;
    let classic = ClassicReceiver::start();
    // 3,000 bytes, no spaces, with 2- and 3-byte characters across every possible cut.
    let text: String = (0..1800).map(|i| ["é", "€", "a", "7"][i % 4]).collect();
    assert!(text.len() >= 3000, "{}", text.len());
    let id = node.send_classic(classic.addr, text.clone()).await.unwrap();
    let mut joined = String::new();
    let mut pieces = 0;
    while joined.len() < text.len() {
        let raw = classic.next().await;
        assert!(
            raw.len() <= 1024,
            "a message of {} bytes would be cut",
            raw.len()
        );
        let (_, team, piece) = split3(&raw);
        assert_eq!(team, "alice");
        joined.push_str(&piece);
        pieces += 1;
    }
    assert_eq!(joined, text);
    assert!(pieces >= 4, "{pieces} pieces");
    assert_eq!(common::delivered(&mut events, id).await, classic.addr);
    node.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn a_reply_that_is_not_an_ack_is_retried_then_reported_failed() {
    let (node, mut events) = start_with(local("alice")).await;
    let classic = ClassicReceiver::replying(Some("WHAT?"));
    let id = node
        .send_classic(classic.addr, "are you there")
        .await
        .unwrap();
    let delayed = events
        .wait_for(WAIT, |e| match e {
            NodeEvent::DeliveryDelayed { to, reason, .. } if *to == classic.addr => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(delayed, "replied 'WHAT?', not [ACK]");
    let reason = events
        .wait_for(WAIT, |e| match e {
            NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(reason, "classic peer: replied 'WHAT?', not [ACK]");
    // Three attempts, each one whole message.
    for _ in 0..3 {
        assert_eq!(split3(&classic.next().await).2, "are you there");
    }
    node.shutdown(Duration::from_secs(1)).await;
}

// ---- connecting and leaving ----

#[actix_rt::test]
async fn connect_request_is_answered_per_classic_accept() {
    let (yes, mut yes_events) = start_with(local("yes")).await;
    let mut config = local("no");
    config.classic.accept = false;
    let (no, mut no_events) = start_with(config).await;
    let from: PeerAddr = "127.0.0.1:5001".parse().unwrap();

    assert_eq!(
        classic_send(&yes, format!("{from} CONNECT_REQUEST")).await,
        "CONNECTED"
    );
    assert_eq!(
        classic_event(&mut yes_events, "accepted").await,
        ClassicEvent::ConnectRequest {
            from,
            accepted: true
        }
    );
    assert!(classic_peers(&yes).await[0].connected);

    assert_eq!(
        classic_send(&no, format!("{from} CONNECT_REQUEST")).await,
        "REJECTED"
    );
    assert_eq!(
        classic_event(&mut no_events, "rejected").await,
        ClassicEvent::ConnectRequest {
            from,
            accepted: false
        }
    );
    assert!(!classic_peers(&no).await[0].connected);
    yes.shutdown(Duration::from_secs(1)).await;
    no.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn exit_and_disconnected_mark_the_peer_gone() {
    let (node, mut events) = start_with(local("alice")).await;
    let ack = format!("[ACK] Message received from {}", node.listen_addr().port());
    let one: PeerAddr = "127.0.0.1:5001".parse().unwrap();
    let two: PeerAddr = "127.0.0.1:5002".parse().unwrap();

    assert_eq!(
        classic_send(&node, format!("{one} TeamOne exit")).await,
        ack
    );
    assert_eq!(
        classic_event(&mut events, "exit").await,
        ClassicEvent::Left {
            from: one,
            team: Some("TeamOne".into()),
            said: "exit".into()
        }
    );
    assert_eq!(classic_send(&node, format!("{two} TeamTwo hi")).await, ack);
    classic_event(&mut events, "two's chat").await;
    assert_eq!(
        classic_send(&node, format!("{two} DISCONNECTED")).await,
        ack
    );
    assert_eq!(
        classic_event(&mut events, "DISCONNECTED").await,
        ClassicEvent::Left {
            from: two,
            team: Some("TeamTwo".into()),
            said: "DISCONNECTED".into()
        }
    );
    let peers = classic_peers(&node).await;
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p.gone), "{peers:?}");
    node.shutdown(Duration::from_secs(1)).await;
}

// ---- bad input ----

#[actix_rt::test]
async fn bad_classic_input_gets_a_clear_line_or_a_quiet_close() {
    let mut config = local("alice");
    config.timeouts.hello = Duration::from_secs(1);
    let (node, mut events) = start_with(config).await;

    // No spaces: the invalid-format line, and no reply.
    assert_eq!(classic_send(&node, "nospacesatall").await, "");
    match classic_event(&mut events, "no spaces").await {
        ClassicEvent::Invalid { reason, .. } => {
            assert!(
                reason.starts_with("expected 'IP:PORT TEAM MESSAGE'"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Not UTF-8.
    assert_eq!(
        classic_send(&node, &b"127.0.0.1:5001 T \xff\xfe\xfd"[..]).await,
        ""
    );
    match classic_event(&mut events, "not UTF-8").await {
        ClassicEvent::Invalid { reason, .. } => {
            assert!(reason.starts_with("not UTF-8"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A 1 MB blob: read up to 64 KiB, then closed; the node says so and goes on.
    let to = node.listen_addr();
    let blob = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        let mut blob = b"127.0.0.1:5001 Blob ".to_vec();
        blob.resize(1024 * 1024, b'x');
        // The node stops reading: the write fails or the connection is reset.
        let wrote = stream.write_all(&blob);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (wrote.is_err(), rest.len())
    });
    match classic_event(&mut events, "the blob").await {
        ClassicEvent::Chat { cut, text, .. } => {
            assert!(cut);
            assert!(text.len() < 64 * 1024);
        }
        other => panic!("{other:?}"),
    }
    // The history keeps that it was cut (/history shows the warning, as the live line).
    let history = node.history(1).await.unwrap();
    match history.as_slice() {
        [HistoryEntry::In {
            name, cut, classic, ..
        }] => assert!(*cut && *classic && name == "Blob", "{history:?}"),
        other => panic!("{other:?}"),
    }
    let _ = tokio::time::timeout(WAIT, blob)
        .await
        .expect("the blob's connection ends");

    // A sender that never stops (a trickle, never a pause): cut at the hello timeout.
    let trickle = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        let started = Instant::now();
        let _ = stream.write_all(b"127.0.0.1:5001 Drip ");
        while started.elapsed() < WAIT {
            if stream.write_all(b"d").is_err() {
                return Some(started.elapsed());
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    });
    match classic_event(&mut events, "the trickle").await {
        ClassicEvent::Chat { cut, team, .. } => assert!(cut && team == "Drip"),
        other => panic!("{other:?}"),
    }
    let closed_after = trickle.await.unwrap().expect("the node closed the trickle");
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");

    // A first byte that is neither protocol: closed quietly.
    assert_eq!(classic_send(&node, &b"\xff\xfe junk"[..]).await, "");

    // A sender that never sends: closed (after the hello timeout, at most).
    let silent = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let started = Instant::now();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
        started.elapsed()
    });
    let silent_for = silent.await.unwrap();
    assert!(silent_for < Duration::from_secs(5), "{silent_for:?}");

    // Through all that the node still serves classic peers.
    let ack = classic_send(&node, "127.0.0.1:5001 Team ok").await;
    assert!(ack.starts_with("[ACK]"), "{ack}");
    node.shutdown(Duration::from_secs(1)).await;
}

/// Sends `texts` at once, each on a connection of its own as a flooding script does;
/// answers each one's reply, in order.
async fn classic_send_at_once(node: &Node, texts: Vec<String>) -> Vec<String> {
    let senders: Vec<_> = texts
        .into_iter()
        .map(|text| {
            let to = node.listen_addr();
            tokio::task::spawn_blocking(move || classic_send_blocking(to, text.as_bytes()))
        })
        .collect();
    let mut replies = Vec::new();
    for sender in senders {
        replies.push(sender.await.unwrap());
    }
    replies
}

#[actix_rt::test]
async fn a_flood_of_classic_texts_from_one_ip_is_slowed_to_its_rate_not_dropped() {
    let mut config = local("alice");
    config.limits.classic_chats = Rate {
        per_second: 10.0,
        burst: 2.0,
    };
    let (node, mut events) = start_with(config).await;
    let from = ClassicReceiver::start().addr;
    let ack = format!("[ACK] Message received from {}", node.listen_addr().port());
    let texts = |round: &str, count: usize| -> Vec<String> {
        (0..count)
            .map(|i| format!("{from} Flood {round} {i}\n"))
            .collect()
    };
    let mut shown = std::collections::BTreeSet::new();
    let mut wait_shown = async |events: &mut EventStream, count: usize| {
        while shown.len() < count {
            match classic_event(events, "a flooded text").await {
                ClassicEvent::Chat { text, .. } => assert!(shown.insert(text)),
                other => panic!("{other:?}"),
            }
        }
    };

    // Eleven at once: two go at once, then one every tenth of a second, the last 0.9 s on.
    let started = Instant::now();
    let replies = classic_send_at_once(&node, texts("a", 11)).await;
    let took = started.elapsed();
    assert!(replies.iter().all(|reply| *reply == ack), "{replies:?}");
    assert!(
        took >= Duration::from_millis(800),
        "11 texts answered in {took:?}"
    );
    wait_shown(&mut events, 11).await;

    // Fifteen more at once: those whose turn is over a second away are closed without a
    // reply (their sender sees no [ACK], as for any failure, and may send again), never
    // shown; each one answered is shown once.
    let replies = classic_send_at_once(&node, texts("b", 15)).await;
    let answered = replies.iter().filter(|reply| **reply == ack).count();
    let refused = replies.iter().filter(|reply| reply.is_empty()).count();
    assert_eq!(answered + refused, 15, "{replies:?}");
    assert!(answered >= 10 && refused >= 2, "{replies:?}");
    wait_shown(&mut events, 11 + answered).await;
    let more = events
        .wait_for(Duration::from_millis(300), |e| match e {
            NodeEvent::Classic(event) => Some(event.clone()),
            _ => None,
        })
        .await;
    assert!(more.is_err(), "a refused text was shown: {more:?}");
    node.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn no_classic_closes_classic_connections_unread() {
    let mut config = local("alice");
    config.classic.enabled = false;
    let (node, _events) = start_with(config).await;
    assert_eq!(classic_send(&node, "127.0.0.1:5001 Team hi").await, "");
    assert!(classic_peers(&node).await.is_empty());
    node.shutdown(Duration::from_secs(1)).await;
}

// ---- the history ----

#[actix_rt::test]
async fn classic_chats_both_ways_are_in_the_history_and_survive_a_restart() {
    let dir = common::temp_dir("classic-history");
    let mut config = local("alice");
    config.data_dir = Some(dir.clone());
    let (node, mut events) = start_with(config.clone()).await;
    let classic = ClassicReceiver::start();
    let peer = classic.addr;

    let reply = classic_send(&node, format!("{peer} Team7 hello alice")).await;
    assert!(reply.starts_with("[ACK]"), "{reply}");
    classic_event(&mut events, "the chat").await;
    let id = node.send_classic(peer, "hello Team7").await.unwrap();
    assert_eq!(split3(&classic.next().await).2, "hello Team7");
    assert_eq!(common::delivered(&mut events, id).await, peer);
    // A message that says the peer left is not a chat: not in the history.
    classic_send(&node, format!("{peer} Team7 exit")).await;
    classic_event(&mut events, "exit").await;

    let history = node.history(10).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    match &history[0] {
        HistoryEntry::In {
            from,
            name,
            key,
            text,
            classic,
            ..
        } => {
            assert_eq!(
                (*from, name.as_str(), text.as_str()),
                (peer, "Team7", "hello alice")
            );
            assert_eq!((*key, *classic), (None, true));
        }
        other => panic!("not the classic chat received: {other:?}"),
    }
    match &history[1] {
        HistoryEntry::Out {
            to,
            id: sent,
            text,
            classic,
            ..
        } => {
            assert_eq!((*to, *sent, text.as_str()), (peer, id, "hello Team7"));
            assert!(*classic);
        }
        other => panic!("not the classic chat sent: {other:?}"),
    }
    node.shutdown(Duration::from_secs(1)).await;

    // Stored with the mark, and read back the same after a restart.
    let file = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_eq!(file.matches("\"classic\":true").count(), 2, "{file}");
    let (again, _) = start_with(config).await;
    assert_eq!(again.history(10).await.unwrap(), history);
    again.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(dir);
}

// ---- both protocols on one port ----

#[actix_rt::test]
async fn a_peerchat_peer_and_a_classic_peer_talk_to_one_node_at_once() {
    let (alice, mut alice_events) = start_with(local("alice")).await;
    let (bob, mut bob_events) = start_with(local("bob")).await;
    let classic = ClassicReceiver::start();

    let to_alice = bob.send_chat(alice.peer_addr(), "hi alice, from bob");
    let classic_says = classic_send(&alice, format!("{} Team7 hi alice, classic", classic.addr));
    let (sent, reply) = futures::join!(to_alice, classic_says);
    let bob_id = sent.unwrap();
    assert!(reply.starts_with("[ACK]"), "{reply}");
    common::delivered(&mut bob_events, bob_id).await;

    let to_bob = alice.send_chat(bob.peer_addr(), "hi bob").await.unwrap();
    let to_classic = alice.send_chat(classic.addr, "hi Team7").await.unwrap();
    assert_eq!(split3(&classic.next().await).2, "hi Team7");
    let mut delivered = Vec::new();
    alice_events
        .wait_for(WAIT, |e| {
            if let NodeEvent::Delivered { id, .. } = e {
                delivered.push(*id);
            }
            (delivered.contains(&to_bob) && delivered.contains(&to_classic)).then_some(())
        })
        .await
        .unwrap();
    // Each in its own list.
    let peers = alice.peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        vec![bob.peer_addr()]
    );
    let classics = classic_peers(&alice).await;
    assert_eq!(
        classics.iter().map(|p| p.addr).collect::<Vec<_>>(),
        vec![classic.addr]
    );
    alice.shutdown(Duration::from_secs(1)).await;
    bob.shutdown(Duration::from_secs(1)).await;
}

// ---- the binary, through its stdin ----

/// Waits (bounded) for the receiver's next message, from a plain thread.
fn next_blocking(classic: &ClassicReceiver) -> (String, String, String) {
    split3(&classic.got.recv_timeout(WAIT).expect("a classic message"))
}

#[test]
fn the_binary_chats_with_a_classic_peer_through_both_menu_paths_and_msg() {
    use common::process::Peerchat;
    let (mut alice, port) = Peerchat::start_named("alice", &[]);
    let classic = ClassicReceiver::start();
    let to = classic.addr;
    let node: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Menu 1, the classic peer named classic:IP:PORT.
    alice.type_lines(&["1", &format!("classic:{to}"), "hello classic"]);
    alice.expect(&format!("delivered to {to}: hello classic"));
    assert_eq!(
        next_blocking(&classic),
        (
            format!("127.0.0.1:{port}"),
            "alice".into(),
            "hello classic".into()
        )
    );
    // `/msg classic:IP:PORT`.
    alice.type_lines(&[&format!("/msg classic:{to} via msg")]);
    alice.expect(&format!("delivered to {to}: via msg"));
    assert_eq!(next_blocking(&classic).2, "via msg");

    // The classic peer writes: shown marked, and acked with alice's port.
    let reply = classic_send_blocking(node, format!("{to} Team7 hi alice").as_bytes());
    assert_eq!(reply, format!("[ACK] Message received from {port}"));
    alice.expect(&format!("[classic, unencrypted] Team7 ({to}): hi alice"));
    // Now menu 1 with a plain IP:PORT goes classic too, and so does /r.
    alice.type_lines(&["1", &to.to_string(), "plain address"]);
    alice.expect(&format!("delivered to {to}: plain address"));
    assert_eq!(next_blocking(&classic).2, "plain address");
    alice.type_lines(&["/r and a reply"]);
    alice.expect(&format!("delivered to {to}: and a reply"));
    assert_eq!(next_blocking(&classic).2, "and a reply");

    // Menu 2 lists it, marked classic.
    alice.type_lines(&["2"]);
    alice.expect("Classic peers [classic, unencrypted]:");
    alice.expect(&format!("classic:{to}  Team7"));

    // `/history` lists the classic chats both ways, marked as their live lines are.
    alice.type_lines(&["/history"]);
    alice.expect(&format!(
        "[classic, unencrypted] you to Team7 ({to}): hello classic"
    ));
    alice.expect(&format!("[classic, unencrypted] Team7 ({to}): hi alice"));
    alice.expect(&format!(
        "[classic, unencrypted] you to Team7 ({to}): and a reply"
    ));

    // A bad text: a clear line, and the node goes on.
    assert_eq!(classic_send_blocking(node, b"gibberish"), "");
    alice.expect("[RECEIVED] Invalid format from 127.0.0.1:");
    alice.type_lines(&["0"]);
    alice.expect("Goodbye.");
    assert!(alice.wait().success());
}

#[test]
fn the_binary_answers_connect_request_per_its_flags() {
    use common::process::Peerchat;
    let (mut no, no_port) = Peerchat::start_named("no", &["--classic-accept", "no"]);
    let (mut off, off_port) = Peerchat::start_named("off", &["--no-classic"]);
    let (mut yes, yes_port) = Peerchat::start_named("yes", &[]);
    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    let request = b"127.0.0.1:5001 CONNECT_REQUEST";

    assert_eq!(classic_send_blocking(addr(yes_port), request), "CONNECTED");
    yes.expect("127.0.0.1:5001 asked to connect: accepted (CONNECTED)");
    assert_eq!(classic_send_blocking(addr(no_port), request), "REJECTED");
    no.expect("127.0.0.1:5001 asked to connect: rejected (REJECTED; --classic-accept no)");
    assert_eq!(classic_send_blocking(addr(off_port), request), "");
    assert_eq!(
        classic_send_blocking(addr(off_port), b"127.0.0.1:5001 T hi"),
        ""
    );
    off.type_lines(&["2"]);
    off.expect("No known peers yet.");
    for node in [&mut yes, &mut no, &mut off] {
        node.type_lines(&["0"]);
        node.expect("Goodbye.");
        assert!(node.wait().success());
    }
}
