//! Issue 14 through pipes: one way to name a peer everywhere (its name, its number in the one
//! list, a host name), conversations with `/talk`, `/all`, `/cancel`, `/forget`, and prompts
//! that ask again after a wrong answer. (The terminal side is in terminal.rs.)

mod common;

use common::process::Peerchat;
use common::RefusingPort;

/// Bob and carol, both connected to alice (through `--peer`), and alice's view of them.
fn alice_bob_and_carol() -> (Peerchat, Peerchat, Peerchat, String, String) {
    let (bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (carol, carol_port) = Peerchat::start_named("carol", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let carol_addr = format!("127.0.0.1:{carol_port}");
    let (mut alice, _) = Peerchat::start_named(
        "alice",
        &["--peer", bob_addr.as_str(), "--peer", carol_addr.as_str()],
    );
    both_connected(
        &mut alice,
        &format!("connected to bob ({bob_addr})"),
        &format!("connected to carol ({carol_addr})"),
    );
    (alice, bob, carol, bob_addr, carol_addr)
}

/// Waits for two `connected to` lines, in whichever order they come.
fn both_connected(node: &mut Peerchat, one: &str, other: &str) {
    node.expect("connected to ");
    node.expect("connected to ");
    node.expect("\n");
    let out = node.stdout_so_far();
    assert!(out.contains(one) && out.contains(other), "{out}");
}

/// The number `/peers` gives `addr` (the one list every listing uses).
fn number_in(listing: &str, addr: &str) -> String {
    listing
        .lines()
        .find(|line| line.contains(addr))
        .and_then(|line| line.trim().split('.').next())
        .unwrap_or_else(|| panic!("{addr} not in {listing}"))
        .to_string()
}

#[test]
fn a_peer_is_named_by_name_number_and_host_name_everywhere() {
    let (mut alice, mut bob, mut carol, bob_addr, carol_addr) = alice_bob_and_carol();

    // By name, any case.
    alice.type_lines(&["/msg Bob hello by name"]);
    alice.expect(&format!("delivered to {bob_addr}: hello by name"));
    bob.expect("): hello by name");

    // By number: /peers, menu 2 and menu 5 number the same way.
    alice.type_lines(&["/peers"]);
    alice.expect("Known peers:");
    let peers = alice.expect("Choose an option: ");
    let carol_number = number_in(&peers, &carol_addr);
    alice.type_lines(&["2"]);
    alice.expect("Known peers:");
    let menu_2 = alice.expect("***** Menu *****");
    assert_eq!(number_in(&menu_2, &carol_addr), carol_number, "{menu_2}");
    alice.type_lines(&[&format!("/msg {carol_number} hello by number")]);
    alice.expect(&format!("delivered to {carol_addr}: hello by number"));
    carol.expect("): hello by number");

    // By host name, in menu 1 and in /msg: localhost, LOCALHOST.
    let bob_port = bob_addr.rsplit(':').next().unwrap();
    alice.type_lines(&["1", "localhost", bob_port, "via localhost"]);
    alice.expect(&format!("delivered to {bob_addr}: via localhost"));
    alice.type_lines(&[&format!("/msg LOCALHOST:{bob_port} via LOCALHOST")]);
    alice.expect(&format!("delivered to {bob_addr}: via LOCALHOST"));
    bob.expect("via LOCALHOST");

    // Menu 5 by name, with the list's numbers.
    alice.type_lines(&["5"]);
    alice.expect("Connected peers:");
    let listing = alice.expect("Peer to disconnect (number or IP:PORT): ");
    assert_eq!(number_in(&listing, &carol_addr), carol_number, "{listing}");
    alice.type_lines(&["carol"]);
    alice.expect(&format!("Disconnected from {carol_addr}."));
    carol.expect("disconnected from alice");

    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn the_machines_own_host_name_names_a_peer_on_it() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    use std::net::ToSocketAddrs;
    let resolves = !host.is_empty()
        && (host.as_str(), 1)
            .to_socket_addrs()
            .map(|mut found| found.any(|a| a.is_ipv4()))
            .unwrap_or(false);
    if !resolves {
        eprintln!("skipped: this machine's host name ({host:?}) does not resolve to IPv4");
        return;
    }
    // Bob on every interface, so that whatever the host name resolves to reaches him.
    let mut bob = Peerchat::start(&[
        "--name",
        "bob",
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--no-discovery",
    ]);
    let bob_port = bob.listening_port();
    let (mut alice, _) = Peerchat::start_named("alice", &[]);
    alice.type_lines(&[&format!("/msg {host}:{bob_port} by host name")]);
    alice.expect("delivered to ");
    bob.expect("): by host name");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn talk_makes_plain_lines_messages_until_menu() {
    let (mut alice, mut bob, _carol, bob_addr, _) = alice_bob_and_carol();
    alice.type_lines(&["/talk bob"]);
    alice.expect(&format!("Talking to bob ({bob_addr})"));
    alice.expect("bob> ");
    alice.type_lines(&["hello everyone", "2", "//menu is a word"]);
    alice.expect(&format!("delivered to {bob_addr}: hello everyone"));
    alice.expect(&format!("delivered to {bob_addr}: 2"));
    alice.expect(&format!("delivered to {bob_addr}: /menu is a word"));
    bob.expect("): hello everyone");
    bob.expect("): 2");
    bob.expect("): /menu is a word");
    // Shortcuts still work in a conversation; /menu leaves it.
    alice.type_lines(&["/peers"]);
    alice.expect("Known peers:");
    alice.type_lines(&["/menu"]);
    alice.expect("***** Menu *****");
    alice.expect("Choose an option: ");
    alice.type_lines(&["2"]);
    alice.expect("Known peers:");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn all_sends_to_every_connected_peer_and_sums_up() {
    let (mut alice, mut bob, mut carol, _, _) = alice_bob_and_carol();
    alice.type_lines(&["/all hello both"]);
    alice.expect("Sending to everyone (");
    alice.expect("Everyone got it: ");
    let out = alice.stdout_so_far().to_string();
    let summary = out
        .lines()
        .find(|l| l.starts_with("Everyone got it: "))
        .expect("the summary");
    assert!(
        summary.contains("bob") && summary.contains("carol"),
        "{summary}"
    );
    bob.expect("): hello both");
    carol.expect("): hello both");
    alice.type_lines(&["/all"]);
    alice.expect("Usage: /all text");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn cancel_and_forget_drop_waiting_messages() {
    let refusing = RefusingPort::new();
    let to = format!("127.0.0.1:{}", refusing.port);
    let (mut node, _) = Peerchat::start_named("n", &[]);
    node.type_lines(&[&format!("/msg {to} one"), &format!("/msg {to} two")]);
    node.expect(&format!("Sending to {to}: two"));
    node.type_lines(&[&format!("/cancel {to}")]);
    node.expect(&format!("Cancelled 2 message(s) waiting for {to}."));
    // It never answered and nothing waits for it any more: a mistake, not a peer.
    node.type_lines(&["/peers"]);
    node.expect("No known peers yet.");
    node.type_lines(&[&format!("/cancel {to}")]);
    node.expect(&format!("No message was waiting for {to}."));

    node.type_lines(&[&format!("/msg {to} three")]);
    node.expect(&format!("Sending to {to}: three"));
    node.type_lines(&["/forget 1"]);
    node.expect(&format!("Forgot {to}: 1 waiting message(s) cancelled."));
    // Forgotten: it is no longer listed.
    node.type_lines(&["/peers"]);
    node.expect("No known peers yet.");
    // Nothing is left to say undelivered at quit.
    node.type_lines(&["0"]);
    let end = node.expect("Goodbye.");
    assert!(!end.contains("not delivered"), "{end}");
    assert!(node.wait().success());
}

#[test]
fn an_address_that_never_answered_is_dropped_once_its_messages_fail() {
    let refusing = RefusingPort::new();
    let to = refusing.addr();
    let (mut node, _) = Peerchat::start_named("n", &["--give-up-after", "1s"]);
    node.type_lines(&[&format!("/msg {to} anyone?")]);
    node.expect(&format!("{to} unreachable ("));
    node.type_lines(&["/peers"]);
    node.expect("Known peers:");
    let listing = node.expect("Choose an option: ");
    assert!(
        listing.contains(&to),
        "listed while a message waits: {listing}"
    );
    node.expect(&format!(
        "failed to deliver to {to} (anyone?): gave up after 1s"
    ));
    node.type_lines(&["/peers"]);
    node.expect("No known peers yet.");
    // Nor is it redialed: no more retry lines for it.
    node.type_lines(&["0"]);
    let end = node.expect("Goodbye.");
    assert!(!end.contains("unreachable"), "{end}");
    assert!(node.wait().success());
}

#[test]
fn wrong_answers_are_asked_again_and_empty_cancels() {
    let (mut alice, _bob, _carol, bob_addr, _) = alice_bob_and_carol();
    // An unspecified address is refused with the addresses that work.
    alice.type_lines(&["1", "0.0.0.0:9101"]);
    alice.expect("0.0.0.0:9101 is where a node listens, not an address to reach it at");
    alice.expect("127.0.0.1:9101");
    alice.expect("Recipient IP (or IP:PORT): ");
    alice.type_lines(&["nobody"]);
    alice.expect("'nobody' is not a known peer");
    alice.expect("Recipient IP (or IP:PORT): ");
    alice.type_lines(&["bob", "asked again, then sent"]);
    alice.expect(&format!("delivered to {bob_addr}: asked again, then sent"));

    // Menu 5: a wrong answer is asked again; empty cancels.
    alice.type_lines(&["5", "9"]);
    alice.expect("There is no peer 9");
    alice.expect("Peer to disconnect (number or IP:PORT): ");
    alice.type_lines(&[""]);
    alice.expect("Nobody disconnected.");
    alice.type_lines(&["/msg 0.0.0.0:1 hi"]);
    alice.expect("0.0.0.0:1 is where a node listens");
    alice.type_lines(&["/history 0"]);
    alice.expect("/history 0 shows no message");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn an_ambiguous_name_asks_which() {
    // Two peers called bob: the name asks which, by their numbers in the list.
    let (_bob1, port1) = Peerchat::start_named("bob", &[]);
    let (mut bob2, port2) = Peerchat::start_named("bob", &[]);
    let (b1, b2) = (format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}"));
    let (mut alice, _) = Peerchat::start_named("alice", &["--peer", &b1, "--peer", &b2]);
    both_connected(
        &mut alice,
        &format!("connected to bob ({b1})"),
        &format!("connected to bob ({b2})"),
    );
    alice.type_lines(&["/peers"]);
    alice.expect("Known peers:");
    let listing = alice.expect("Choose an option: ");
    let second = number_in(&listing, &b2);
    alice.type_lines(&["/msg bob which one?"]);
    alice.expect("Several peers answer to that:");
    alice.expect("Which one (number, empty to cancel): ");
    alice.type_lines(&["7"]);
    alice.expect("'7' is not one of");
    alice.type_lines(&[&second]);
    alice.expect(&format!("delivered to {b2}: which one?"));
    bob2.expect("): which one?");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn send_help_does_not_say_it_asks_and_an_empty_user_is_said() {
    let mut help = Peerchat::start_exactly(&["send", "--help"]);
    assert!(help.wait().success());
    let text = help.stdout_so_far().to_string();
    assert!(text.contains("--name"), "{text}");
    assert!(!text.contains("asked"), "{text}");

    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let mut send = Peerchat::start_exactly_with_env(
        &[
            "send",
            "--ephemeral",
            "--bind",
            "127.0.0.1",
            &format!("127.0.0.1:{bob_port}"),
            "hi",
        ],
        &[("USER", "")],
    );
    send.expect_stderr("$USER is empty or not a usable name: sending as 'peerchat'");
    send.expect_stderr("--name");
    assert!(send.wait().success());
    bob.expect("peerchat (");
}
