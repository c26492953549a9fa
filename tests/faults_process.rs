//! Process-level faults with the real binary: a peer killed with SIGKILL or frozen with SIGSTOP,
//! the console panicking, a restart storm ending the process, fault commands, the trace file.

mod common;

use common::process::Peerchat;

#[test]
fn a_peer_killed_with_sigkill_is_noticed_and_shown_disconnected() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named("alice", &["--peer", &bob_addr]);
    alice.expect(&format!("connected to bob ({bob_addr})"));
    bob.child.kill().unwrap();
    bob.wait();
    alice.expect(&format!("disconnected from bob ({bob_addr}): connection"));
    alice.type_lines(&["2"]);
    alice.expect(&format!("1. {bob_addr}  bob  not connected"));
    // A message to it waits, and is delivered when bob is back on the same port.
    alice.type_lines(&["1", &bob_addr, "are you back?"]);
    alice.expect(&format!("{bob_addr} unreachable"));
    let mut bob2 = Peerchat::start(&[
        "--name",
        "bob",
        "--port",
        &bob_port.to_string(),
        "--bind",
        "127.0.0.1",
    ]);
    bob2.expect("are you back?");
    alice.expect(&format!("delivered to {bob_addr}: are you back?"));
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn a_frozen_peer_is_noticed_by_the_heartbeat_within_the_idle_timeout() {
    let (bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named(
        "alice",
        &[
            "--peer",
            &bob_addr,
            "--ping-interval",
            "200ms",
            "--idle-timeout",
            "1s",
        ],
    );
    alice.expect(&format!("connected to bob ({bob_addr})"));
    bob.signal("STOP");
    let started = std::time::Instant::now();
    alice.expect(&format!(
        "disconnected from bob ({bob_addr}): timeout: nothing heard for 1s"
    ));
    let noticed = started.elapsed();
    assert!(
        noticed < std::time::Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    bob.signal("CONT");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn a_console_panic_restarts_the_console_and_the_chat_goes_on() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named("alice", &["--faults"]);
    alice.type_lines(&["1", &bob_addr, "before"]);
    alice.expect(&format!("delivered to {bob_addr}: before"));
    alice.type_lines(&["!panic console"]);
    alice.expect("supervisor: console failed: panic: panic (injected)");
    alice.expect("supervisor: console restarted");
    // Typing goes on, and so do the messages both ways.
    alice.type_lines(&["1", &bob_addr, "after"]);
    alice.expect(&format!("delivered to {bob_addr}: after"));
    bob.expect("before");
    bob.expect("after");
    bob.type_lines(&["/r back to you"]);
    alice.expect("bob (");
    alice.expect("back to you");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
}

#[test]
fn a_registry_restart_storm_ends_the_process_with_a_clear_error_and_code_3() {
    let (mut node, port) = Peerchat::start_named("n", &["--faults", "--max-restarts", "2"]);
    let (mut peer, _) = Peerchat::start_named("o", &[]);
    peer.type_lines(&["1", &format!("127.0.0.1:{port}"), "still there?"]);
    node.expect("still there?");
    node.type_lines(&["!panic registry", "!panic registry", "!panic registry"]);
    node.expect_stderr("error: node failed: 3 restarts within 10s (limit 2)");
    let status = node.wait();
    assert_eq!(status.code(), Some(3));
    // The peer was told why, before the process went.
    peer.expect("peer said bye: node failed");
}

#[test]
fn fault_commands_need_the_faults_flag_and_listener_faults_heal() {
    let (mut node, port) = Peerchat::start_named("n", &[]);
    node.type_lines(&["!crash listener"]);
    node.expect("Fault commands (!...) need peerchat to be started with --faults.");
    node.type_lines(&["0"]);
    assert!(node.wait().success());

    let (mut node, port2) = Peerchat::start_named("n", &["--faults"]);
    assert_ne!(port, 0);
    node.type_lines(&["!crash listener"]);
    node.expect("supervisor: listener restarted");
    // The same port serves new peers.
    let (mut other, _) = Peerchat::start_named("o", &[]);
    other.type_lines(&["1", &format!("127.0.0.1:{port2}"), "hello again"]);
    node.expect("hello again");
    node.type_lines(&["!bogus"]);
    node.expect("fault commands: !crash ACTOR");
    node.type_lines(&["0"]);
    assert!(node.wait().success());
}

#[test]
fn trace_writes_one_line_per_message_to_a_file() {
    let file = std::env::temp_dir().join(format!("peerchat-trace-{}.log", std::process::id()));
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (mut alice, _) = Peerchat::start_named(
        "alice",
        &[
            "--trace",
            "console,session",
            "--trace-file",
            file.to_str().unwrap(),
        ],
    );
    alice.type_lines(&["1", &format!("127.0.0.1:{bob_port}"), "traced hello"]);
    alice.expect("delivered to");
    bob.expect("traced hello");
    alice.type_lines(&["0"]);
    assert!(alice.wait().success());
    let trace = std::fs::read_to_string(&file).unwrap();
    assert!(
        trace.contains("Console    → Registry    SendChat { to: 127.0.0.1:"),
        "{trace}"
    );
    assert!(
        trace.contains("Session    → Registry    Register {"),
        "{trace}"
    );
    assert!(
        trace.contains("Registry   → Console     Delivered {"),
        "{trace}"
    );
    // Filtered: nothing between the Node API and the Supervisor.
    assert!(!trace.contains("→ Supervisor  Adopt"), "{trace}");
    let _ = std::fs::remove_file(file);
}
