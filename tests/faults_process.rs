//! Process-level faults, with the real binary: a peer killed with SIGKILL, a peer frozen
//! with SIGSTOP (its host "vanished": the socket stays open, nothing answers).

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
