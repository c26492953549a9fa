//! Who a peer is, tried as an attacker would (issue 12, the Registry's side): a forged
//! `peers` entry pointing a known key at the attacker's address, a pinned peer showing up
//! with another key (warning, refusal, then `/trust`; the binary through its stdin), a chat to
//! a second address of a connected peer (arrives once, promptly), and an outage longer than
//! the give-up time (the peers find each other again by themselves).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::process::Peerchat;
use common::proxy::Proxy;
use common::*;
use peerchat_actors::wire::{Frame, PeerEntry};
use peerchat_actors::{ConnectError, NodeConfig, NodeEvent, PeerAddr};

#[actix_rt::test]
async fn a_forged_peers_entry_for_a_known_key_fails_the_key_check_and_the_real_address_stays() {
    let (alice, mut alice_ev) = start("alice").await;
    let (bob, mut bob_ev) = start("bob").await;
    // Eve listens where she will say bob is: a real node, with her own key.
    let (eve, _eve_ev) = start("eve").await;
    alice.connect(bob.peer_addr()).await.unwrap();
    connected(&mut alice_ev, bob.peer_addr()).await;

    // Mallory connects to alice and introduces bob's key at eve's address.
    let mut mallory = RawPeer::handshake(alice.peer_addr(), 40111).await;
    let forged = PeerEntry {
        addr: eve.peer_addr().to_string(),
        name: "bob".into(),
        key: bob.key(),
    };
    mallory
        .send(&Frame::Peers {
            peers: vec![forged],
        })
        .await;
    // A get_peers round trip: the forged frame has been handled when its answer comes.
    mallory.send(&Frame::GetPeers).await;
    while !matches!(mallory.next().await, Some(Frame::Peers { .. }) | None) {}

    // Dialing the introduced address expects bob's key; eve proves hers.
    let dialed = alice.connect(eve.peer_addr()).await;
    assert!(
        matches!(&dialed, Err(ConnectError::Handshake(why)) if why.contains("expected")),
        "{dialed:?}"
    );
    let (peer, expected, presented) = alice_ev
        .wait_for(WAIT, |e| match e {
            NodeEvent::KeyMismatch {
                peer,
                expected,
                presented,
                source,
            } => {
                assert!(source.contains("introduced by raw"), "{source}");
                Some((*peer, expected.clone(), presented.clone()))
            }
            _ => None,
        })
        .await
        .expect("the mismatch is reported");
    assert_eq!(peer, eve.peer_addr());
    assert_eq!(expected, bob.fingerprint());
    assert_eq!(presented, eve.fingerprint());

    // Bob's real address is the one kept for his key; the forged one is gone.
    let whois = alice.whois("bob").await.expect("bob is known");
    assert_eq!(whois.fingerprint, bob.fingerprint());
    let addrs: Vec<PeerAddr> = whois.addrs.iter().map(|a| a.addr).collect();
    assert_eq!(addrs, vec![bob.peer_addr()]);
    assert_eq!(whois.addrs[0].how, "dialed and verified");
    // And chats to bob still reach bob.
    alice
        .send_chat(bob.peer_addr(), "still you?")
        .await
        .unwrap();
    assert_eq!(received(&mut bob_ev).await.1, "still you?");
}

#[actix_rt::test]
async fn a_chat_to_a_second_address_of_a_connected_peer_arrives_once_and_promptly() {
    let (alice, mut alice_ev) = start("alice").await;
    // Bob listens on every address, so 127.0.0.2 reaches him as well as 127.0.0.1.
    let mut config = NodeConfig::local("bob");
    config.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let (bob, mut bob_ev) = start_with(config).await;
    let first = PeerAddr::from_ip_port(Ipv4Addr::LOCALHOST.into(), bob.peer_addr().port());
    let second = PeerAddr::from_ip_port(Ipv4Addr::new(127, 0, 0, 2).into(), first.port());
    alice.connect(first).await.unwrap();
    connected(&mut alice_ev, first).await;

    let started = Instant::now();
    let id = alice
        .send_chat(second, "to your other address")
        .await
        .unwrap();
    let to = delivered(&mut alice_ev, id).await;
    assert_eq!(to, second, "reported to the address it was written to");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "promptly, no give-up"
    );
    assert_eq!(received(&mut bob_ev).await.1, "to your other address");
    // Once: nothing more arrives, and the pair still has one connection.
    let id = alice.send_chat(first, "and the first").await.unwrap();
    delivered(&mut alice_ev, id).await;
    assert_eq!(received(&mut bob_ev).await.1, "and the first");
    let peers = alice.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "one line per key: {peers:?}");
    assert!(peers[0].connected);
    assert_eq!(peers[0].key, Some(bob.key()));
    let mut addrs = peers[0].also.clone();
    addrs.push(peers[0].addr);
    addrs.sort();
    assert_eq!(addrs, vec![first, second]);
    // No refusal, no duplicate on either side.
    for events in [&mut alice_ev, &mut bob_ev] {
        while let Some(event) = events.next_within(Duration::from_millis(200)).await {
            assert!(
                !matches!(
                    event,
                    NodeEvent::ConnectionRefused { .. }
                        | NodeEvent::PeerDisconnected { .. }
                        | NodeEvent::ChatReceived { .. }
                ),
                "{event:?}"
            );
        }
    }
}

#[actix_rt::test]
async fn after_an_outage_longer_than_the_give_up_time_the_peers_reconnect_and_chats_flow() {
    let mut bob_config = fast_config("bob");
    bob_config.retry.give_up_after = Duration::from_millis(800);
    let (bob, mut bob_ev) = start_with(bob_config).await;
    // Alice listens where bob cannot dial her back (127.0.0.2, bob sees her as 127.0.0.1):
    // the reconnect has to be hers, through the relay that is cut.
    let mut alice_config = fast_config("alice");
    alice_config.bind = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    alice_config.retry.give_up_after = Duration::from_millis(800);
    let (alice, mut alice_ev) = start_with(alice_config).await;
    let relay = Proxy::start(bob.peer_addr()).await;
    alice.connect(relay.addr()).await.unwrap();
    connected(&mut alice_ev, relay.addr()).await;

    // The outage: everything through the relay vanishes.
    relay.set_black_hole(true);
    relay.cut_all();
    disconnected(&mut alice_ev, relay.addr()).await;
    let id = alice
        .send_chat(relay.addr(), "lost in the outage")
        .await
        .unwrap();
    alice_ev
        .wait_for(WAIT, |e| match e {
            NodeEvent::DeliveryFailed {
                id: failed, reason, ..
            } if *failed == id => {
                assert!(reason.starts_with("gave up after"), "{reason}");
                Some(())
            }
            _ => None,
        })
        .await
        .expect("the chat is given up");
    // Well past the give-up time, the relay works again: nobody types anything.
    relay.heal();
    connected(&mut alice_ev, relay.addr()).await;
    let id = alice
        .send_chat(relay.addr(), "after the outage")
        .await
        .unwrap();
    delivered(&mut alice_ev, id).await;
    let (_, text) = received(&mut bob_ev).await;
    assert_eq!(text, "after the outage");
}

#[test]
fn a_pinned_peer_with_another_key_is_refused_loudly_until_trusted() {
    let dirs = [
        temp_dir("tofu-alice"),
        temp_dir("tofu-bob-1"),
        temp_dir("tofu-bob-2"),
    ];
    let dir = |n: usize| dirs[n].to_str().unwrap().to_string();
    let alice_dir = dir(0);
    let (mut alice, alice_port) = Peerchat::start_named("alice", &["--data-dir", &alice_dir]);
    let alice_addr = format!("127.0.0.1:{alice_port}");

    // Bob's first key: pinned on first contact.
    let bob_dir = dir(1);
    let (mut bob, bob_port) = Peerchat::start_named("bob", &["--data-dir", &bob_dir]);
    let first_key = bob.key().to_string();
    bob.type_lines(&[&format!("/connect {alice_addr}")]);
    bob.expect(&format!("Connected to {alice_addr}."));
    alice.expect(&format!("connected to bob (127.0.0.1:{bob_port})"));
    // Menu 2: one line for bob, with the first two groups of his key's fingerprint.
    alice.type_lines(&["2"]);
    alice.expect(&format!(
        "1. 127.0.0.1:{bob_port}  bob  connected  key {}",
        &first_key[..9]
    ));
    bob.type_lines(&["/quit"]);
    assert!(bob.wait().success());
    alice.expect("disconnected from bob");

    // "Bob" again, with another key, at another port.
    let other_dir = dir(2);
    let (mut impostor, impostor_port) = Peerchat::start_named("bob", &["--data-dir", &other_dir]);
    let second_key = impostor.key().to_string();
    assert_ne!(first_key, second_key);
    impostor.type_lines(&[&format!("/connect {alice_addr}")]);
    // Alice learns the dialer's key last (Noise XX, message 3): its side of the handshake
    // completes, then alice refuses the session with a bye saying why.
    impostor.expect(&format!(
        "disconnected from alice ({alice_addr}): peer said bye: key changed"
    ));
    let warning = alice.expect("to accept it.");
    assert!(warning.contains("WARNING: THE KEY OF bob"), "{warning}");
    assert!(
        warning.contains(&first_key) && warning.contains(&second_key),
        "{warning}"
    );
    assert!(warning.contains("type /trust bob"), "{warning}");
    alice.type_lines(&["/whois bob"]);
    // Still the first key, pinned; bob is not connected.
    alice.expect(&format!(
        "Peer bob\n  key {first_key}  (pinned, not connected)"
    ));

    // The user compared fingerprints out of band and trusts the new key: alice dials it.
    alice.type_lines(&["/trust bob"]);
    alice.expect(&format!("Trusted the new key of bob: {second_key}."));
    alice.expect(&format!("connected to bob (127.0.0.1:{impostor_port})"));
    impostor.expect("connected to alice");
    alice.type_lines(&["/whois bob"]);
    alice.expect(&format!(
        "Peer bob\n  key {second_key}  (pinned, connected)"
    ));
    // And the pin is on disk: the file names the new key's hex, not the old one's.
    let pins = std::fs::read_to_string(dirs[0].join("known_peers")).expect("pins saved");
    assert!(pins.contains("name \"bob\""), "{pins}");
    alice.type_lines(&["/quit"]);
    impostor.type_lines(&["/quit"]);
    assert!(alice.wait().success() && impostor.wait().success());
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn one_shot_senders_are_never_pinned_nor_refused_for_a_new_key() {
    let dirs = [temp_dir("oneshot-alice"), temp_dir("oneshot-bob")];
    let alice_dir = dirs[0].to_str().unwrap().to_string();
    let bob_dir = dirs[1].to_str().unwrap().to_string();
    let (mut alice, alice_port) = Peerchat::start_named("alice", &["--data-dir", &alice_dir]);
    let alice_addr = format!("127.0.0.1:{alice_port}");
    // The listening bob is pinned.
    let (mut bob, _) = Peerchat::start_named("bob", &["--data-dir", &bob_dir]);
    bob.type_lines(&[&format!("/connect {alice_addr}")]);
    alice.expect("connected to bob (");
    // Two scripts calling themselves bob, each with a fresh key: both delivered.
    for text in ["first run", "second run"] {
        let mut script = Peerchat::start(&[
            "send",
            "--name",
            "bob",
            "--bind",
            "127.0.0.1",
            &alice_addr,
            text,
        ]);
        script.expect_stderr(&format!("delivered to {alice_addr}"));
        assert!(script.wait().success());
        alice.expect(&format!("): {text}"));
    }
    let output = alice.unread_after(Duration::from_millis(300)).to_string();
    let everything = alice.stdout_so_far().to_string();
    assert!(!everything.contains("WARNING"), "{everything}\n{output}");
    let pins = std::fs::read_to_string(dirs[0].join("known_peers")).expect("pins saved");
    assert_eq!(pins.matches("name \"bob\"").count(), 1, "{pins}");
    // The one-shot senders' addresses (ephemeral ports) are not pinned: only bob's one.
    assert_eq!(pins.matches("addr ").count(), 1, "{pins}");
    for node in [&mut alice, &mut bob] {
        node.type_lines(&["/quit"]);
        assert!(node.wait().success());
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[actix_rt::test]
async fn dialing_a_pinned_address_that_shows_another_key_is_refused_until_trusted() {
    let dir = temp_dir("pinned-dial");
    let mut config = NodeConfig::local("alice");
    config.data_dir = Some(dir.clone());
    let (alice, mut alice_ev) = start_with(config).await;
    let (bob, _) = start("bob").await;
    let bob_at = bob.peer_addr();
    alice.connect(bob_at).await.unwrap();
    connected(&mut alice_ev, bob_at).await;
    let first = bob.fingerprint();
    bob.shutdown(Duration::from_millis(100)).await;
    disconnected(&mut alice_ev, bob_at).await;

    // Another key listens at bob's pinned address now.
    let mut config = NodeConfig::local("bob");
    config.port = bob_at.port();
    let (stranger, _) = start_with(config).await;
    let dialed = alice.connect(bob_at).await;
    assert!(
        matches!(dialed, Err(ConnectError::Handshake(_))),
        "{dialed:?}"
    );
    let (pinned_by, pinned, presented) = alice_ev
        .wait_for(WAIT, |e| match e {
            NodeEvent::KeyChanged {
                pinned_by,
                pinned,
                presented,
                ..
            } => Some((pinned_by.clone(), pinned.clone(), presented.clone())),
            _ => None,
        })
        .await
        .expect("the key change is reported");
    assert_eq!(pinned_by, format!("address {bob_at}"));
    assert_eq!((pinned, presented), (first, stranger.fingerprint()));
    assert!(alice.peers().await.unwrap().iter().all(|p| !p.connected));

    // The user trusts it (by fingerprint prefix): alice dials it and it is bob now.
    let prefix = &stranger.fingerprint().to_string()[..9];
    let change = alice.trust(prefix).await.expect("a change waits");
    assert_eq!(change.presented, stranger.key());
    connected(&mut alice_ev, bob_at).await;
    let whois = alice.whois(&bob_at.to_string()).await.unwrap();
    assert_eq!(whois.fingerprint, stranger.fingerprint());
    assert!(whois.pinned && whois.connected);
    alice.shutdown(Duration::from_millis(100)).await;
    let _ = std::fs::remove_dir_all(dir);
}
