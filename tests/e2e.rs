//! End-to-end: the built binary, driven through its stdin as a person or a script would.

mod common;

use common::process::Peerchat;
use common::RefusingPort;

#[test]
fn two_processes_chat_through_the_menu() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (mut alice, alice_port) = Peerchat::start_named("alice", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let alice_addr = format!("127.0.0.1:{alice_port}");

    // 1: send, IP and port asked separately.
    alice.type_lines(&["1", "127.0.0.1", &bob_port.to_string(), "hello bob"]);
    alice.expect("Recipient IP (or IP:PORT): ");
    alice.expect("Recipient port: ");
    alice.expect(&format!("Sending to {bob_addr}: hello bob"));
    alice.expect(&format!("delivered to {bob_addr}: hello bob"));
    bob.expect(&format!("alice ({alice_addr}): hello bob"));

    // Bob answers with IP:PORT in one answer.
    bob.type_lines(&["1", &alice_addr, "hi alice, ünïcødé 👋"]);
    bob.expect(&format!("delivered to {alice_addr}: hi alice, ünïcødé 👋"));
    alice.expect(&format!("bob ({bob_addr}): hi alice, ünïcødé 👋"));

    // 2: query peers.
    bob.type_lines(&["2"]);
    bob.expect("Known peers:");
    bob.expect(&format!("1. {alice_addr}  alice  connected"));

    // 4: disconnect from all; the peer stays known.
    alice.type_lines(&["4"]);
    alice.expect("Disconnected from 1 peer(s).");
    bob.expect(&format!(
        "disconnected from alice ({alice_addr}): peer said bye"
    ));
    alice.type_lines(&["2"]);
    alice.expect(&format!("1. {bob_addr}  bob  not connected"));

    // 3: connect to known peers again.
    alice.type_lines(&["3"]);
    alice.expect(&format!("{bob_addr}: connected"));
    bob.expect(&format!("connected to alice ({alice_addr})"));

    // 5: disconnect one, chosen by number.
    alice.type_lines(&["5"]);
    alice.expect(&format!("1. {bob_addr}  bob  connected"));
    alice.expect("Peer to disconnect (number or IP:PORT): ");
    alice.type_lines(&["1"]);
    alice.expect(&format!("Disconnected from {bob_addr}."));
    bob.expect("disconnected from alice");

    // 0: quit, exit code 0.
    alice.type_lines(&["0"]);
    alice.expect("Goodbye.");
    assert!(alice.wait().success());
    // End of input quits too.
    bob.close_stdin();
    bob.expect("Goodbye.");
    assert!(bob.wait().success());
}

#[test]
fn a_scripted_send_waits_for_its_ack_before_quitting_at_end_of_input() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let mut alice = Peerchat::start(&["--name", "alice", "--port", "0", "--bind", "127.0.0.1"]);
    let to = format!("127.0.0.1:{bob_port}");
    alice.type_lines(&["1", &to, "one", "1", &to, "two", "1", &to, "three"]);
    alice.close_stdin();
    alice.expect("Goodbye.");
    assert!(alice.wait().success());
    let out = alice.stdout_so_far().to_string();
    for text in ["one", "two", "three"] {
        assert!(out.contains(&format!("delivered to {to}: {text}")), "{out}");
    }
    bob.expect("one");
    bob.expect("two");
    bob.expect("three");
}

#[test]
fn wrong_menu_input_is_explained_and_the_menu_comes_back() {
    let (mut node, _) = Peerchat::start_named("n", &[]);
    node.type_lines(&["7"]);
    node.expect("'7' is not a menu option: type a number from 0 to 5.");
    node.expect("***** Menu *****");
    node.type_lines(&["hello"]);
    node.expect("'hello' is not a menu option");
    // A wrong answer is asked again with the reason; an empty answer cancels.
    node.type_lines(&["1", "not-a-peer"]);
    node.expect("'not-a-peer' is not a known peer");
    node.expect("Recipient IP (or IP:PORT): ");
    node.type_lines(&["999.1.1.1"]);
    node.expect("'999.1.1.1' is not an IP address or IP:PORT");
    node.expect("Recipient IP (or IP:PORT): ");
    node.type_lines(&[""]);
    node.expect("Nothing sent.");
    node.expect("***** Menu *****");
    node.type_lines(&["1", "127.0.0.1", "99999"]);
    node.expect("'99999' is not a port number (1-65535)");
    node.expect("Recipient port: ");
    node.type_lines(&[""]);
    node.expect("Nothing sent.");
    node.type_lines(&["1", "127.0.0.1:9", ""]);
    node.expect("Empty message, nothing sent.");
    node.type_lines(&["2"]);
    node.expect("No known peers yet.");
    node.type_lines(&["5"]);
    node.expect("Not connected to any peer.");
    node.type_lines(&["4"]);
    node.expect("Not connected to any peer.");
    node.type_lines(&["3"]);
    node.expect("No known peers to connect to.");
    node.type_lines(&["\u{1b}[2J"]);
    node.expect("'\\u{1b}[2J' is not a menu option");
    node.type_lines(&["0"]);
    assert!(node.wait().success());
}

#[test]
fn an_unreachable_peer_is_a_clear_failure_not_a_crash() {
    let (mut node, _) = Peerchat::start_named("n", &["--give-up-after", "1s"]);
    let refusing = RefusingPort::new();
    let port = refusing.port;
    node.type_lines(&["1", &format!("127.0.0.1:{port}"), "anyone?"]);
    node.expect(&format!(
        "127.0.0.1:{port} unreachable (connection refused (is a peer listening there?)): 1 message(s) waiting, retrying in"
    ));
    node.expect(&format!(
        "failed to deliver to 127.0.0.1:{port} (anyone?): gave up after 1s: connection refused"
    ));
    // Sending to itself is refused too.
    node.type_lines(&["0"]);
    assert!(node.wait().success());
}

#[test]
fn sending_to_itself_is_refused() {
    let (mut node, port) = Peerchat::start_named("n", &[]);
    node.type_lines(&["1", &format!("127.0.0.1:{port}"), "me?"]);
    node.expect(&format!(
        "Cannot send to 127.0.0.1:{port}: that address is this node itself."
    ));
    node.type_lines(&["0"]);
    assert!(node.wait().success());
}

#[test]
fn asks_for_name_and_port_when_not_given() {
    let mut node = Peerchat::start(&["--bind", "127.0.0.1"]);
    node.expect("Your name: ");
    node.type_lines(&["", "carol"]);
    node.expect("The name cannot be empty.");
    node.expect("Port to listen on (0 = any free port): ");
    node.type_lines(&["http", "0"]);
    node.expect("'http' is not a port number");
    node.expect("carol listening on 127.0.0.1:");
    node.expect("***** Menu *****");
    node.close_stdin();
    node.expect("Goodbye.");
    assert!(node.wait().success());
}

#[test]
fn a_port_in_use_is_a_clear_error_and_a_nonzero_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut node = Peerchat::start(&["--name", "x", "--port", &port, "--bind", "127.0.0.1"]);
    node.expect_stderr(&format!("port {port} is already in use"));
    let status = node.wait();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn help_describes_the_options() {
    let mut node = Peerchat::start(&["--help"]);
    for option in ["--name", "--port", "--bind", "--peer", "--idle-timeout"] {
        node.expect(option);
    }
    assert!(node.wait().success());
}

#[test]
fn ctrl_c_quits_cleanly_with_a_bye_to_peers() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named("alice", &["--peer", &bob_addr]);
    alice.expect(&format!("connected to bob ({bob_addr})"));
    alice.signal("INT");
    alice.expect("Quitting (interrupted)");
    alice.expect("Goodbye.");
    assert!(alice.wait().success());
    bob.expect("disconnected from alice");
    bob.expect("peer said bye: quit");
}

#[test]
fn a_hostile_peers_escape_sequences_are_shown_inert() {
    use std::io::Read;
    let (mut node, port) = Peerchat::start_named("n", &[]);
    let mut raw = common::BlockingPeer::connect(port, "\u{1b}]0;pwned\u{7}evil", 1234);
    raw.stream
        .set_read_timeout(Some(common::process::PROCESS_WAIT))
        .unwrap();
    let chat = peerchat_actors::wire::Frame::Chat {
        id: 1,
        text: "\u{1b}[2J\u{1b}[31mred\r\u{202e}txt".into(),
        sent_at_ms: 0,
    };
    raw.send(&[chat]);
    node.expect(
        "\\u{1b}]0;pwned\\u{7}evil (127.0.0.1:1234): \\u{1b}[2J\\u{1b}[31mred\\r\\u{202e}txt",
    );
    assert!(
        !node.stdout_so_far().contains('\u{1b}'),
        "a raw escape reached the terminal"
    );
    let mut buf = [0u8; 256];
    assert!(raw.stream.read(&mut buf).unwrap() > 0, "the node answered");
    node.type_lines(&["0"]);
    assert!(node.wait().success());
}

#[test]
fn quitting_with_undelivered_messages_warns_and_counts_them() {
    let refusing = RefusingPort::new();
    let port = refusing.port;
    let to = format!("127.0.0.1:{port}");
    let (mut node, _) = Peerchat::start_named("n", &[]);
    node.type_lines(&["1", &to, "one", "1", &to, "two"]);
    node.expect(&format!("Sending to {to}: two"));
    node.type_lines(&["2"]);
    node.expect(&format!("1. {to}  ?  not connected, 2 message(s) waiting"));
    node.type_lines(&["0"]);
    node.expect("waiting for 2 message(s) to be acknowledged");
    node.expect("Warning: 2 message(s) were not delivered.");
    assert!(node.wait().success());

    // With a data directory they are kept, and said to be.
    let dir = std::env::temp_dir().join(format!("peerchat-e2e-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut node, _) = Peerchat::start_named("n", &["--data-dir", dir.to_str().unwrap()]);
    node.type_lines(&["1", &to, "three", "0"]);
    node.expect("Warning: 1 message(s) not delivered yet; they are kept in the data directory");
    assert!(node.wait().success());
    let (mut again, _) = Peerchat::start_named("n", &["--data-dir", dir.to_str().unwrap()]);
    again.type_lines(&["2"]);
    again.expect(&format!("1. {to}  ?  not connected, 1 message(s) waiting"));
    again.type_lines(&["0"]);
    assert!(again.wait().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_corrupt_outbox_file_is_reported_and_the_rest_kept() {
    let dir = std::env::temp_dir().join(format!("peerchat-e2e-corrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("outbox.jsonl"),
        "{\"queued\":{\"id\":5,\"to\":\"127.0.0.1:9\",\"text\":\"kept\",\"sent_at_ms\":1}}\n\
         this line is garbage\n{\"queued\":{\"id\":6,\"to\"",
    )
    .unwrap();
    let (mut node, _) = Peerchat::start_named("n", &["--data-dir", dir.to_str().unwrap()]);
    node.expect_stderr("outbox.jsonl:2: unreadable line skipped");
    node.expect_stderr("outbox.jsonl:3: unreadable line skipped");
    node.type_lines(&["2"]);
    node.expect("1. 127.0.0.1:9  ?  not connected, 1 message(s) waiting");
    node.type_lines(&["0"]);
    assert!(node.wait().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn history_lists_the_conversation_and_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("peerchat-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap();
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named("alice", &["--data-dir", dir_arg]);
    alice.type_lines(
        &["/msg ".to_string() + &bob_addr + " first words"]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    alice.expect("delivered to");
    bob.type_lines(&["/r an answer"]);
    alice.expect("an answer");
    alice.type_lines(&["/history"]);
    alice.expect("History:");
    alice.expect(&format!("you to bob ({bob_addr}): first words"));
    alice.expect(&format!("bob ({bob_addr}): an answer"));
    alice.type_lines(&["/history 1"]);
    let listing = alice.expect("an answer");
    assert!(!listing.contains("first words"), "{listing}");
    alice.type_lines(&["/history 0"]);
    alice.expect("/history 0 shows no message");
    alice.type_lines(&["/history many"]);
    alice.expect("Usage: /history [N]");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
    // From the file, after a restart.
    let (mut again, _) = Peerchat::start_named("alice", &["--data-dir", dir_arg]);
    again.type_lines(&["/history 5"]);
    again.expect("first words");
    again.expect("an answer");
    again.type_lines(&["0"]);
    assert!(again.wait().success());
    let _ = std::fs::remove_dir_all(dir);
}
