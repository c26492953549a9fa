//! `peerchat send IP:PORT TEXT`, the one-shot command for scripts, against a real node
//! process: exit 0 on delivery, 1 when not delivered, 2 for a usage error.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{Peerchat, PROCESS_WAIT};

/// Runs `peerchat ARGS` to its end (bounded) with no stdin.
fn peerchat(args: &[&str]) -> Output {
    peerchat_with_input(args, None)
}

/// Runs `peerchat ARGS` to its end (bounded), with `input` as its stdin if given.
/// With neither `--data-dir` nor `--ephemeral` among `args`, `--ephemeral` is added: nothing
/// is left in the user's data directory.
fn peerchat_with_input(args: &[&str], input: Option<Vec<u8>>) -> Output {
    let keeps = args
        .iter()
        .any(|a| *a == "--data-dir" || *a == "--ephemeral");
    // First: after the subcommand's text it would be part of the text.
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerchat"))
        .args(if keeps { None } else { Some("--ephemeral") })
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peerchat starts");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A thread: the child reads no faster than its peer acks.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let until = Instant::now() + PROCESS_WAIT;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("peerchat {args:?} did not end within {PROCESS_WAIT:?}: {out:?}");
        }
        // Polling a child's exit: std has no way to wait on it with a timeout.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port on 127.0.0.1 that was free a moment ago (for a node to bind).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn a_delivered_message_exits_0() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let to = format!("127.0.0.1:{bob_port}");
    let out = peerchat(&[
        "send",
        "--name",
        "carol",
        "--bind",
        "127.0.0.1",
        &to,
        "hello from a script,",
        "ünïcødé 👋",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("delivered to {to}")),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "stdout is for nothing: {out:?}");
    bob.expect("carol (127.0.0.1:");
    bob.expect("): hello from a script, ünïcødé 👋");
}

#[test]
fn a_one_shot_sender_is_transient_no_connected_lines_and_not_kept_as_a_peer() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let to = format!("127.0.0.1:{bob_port}");
    let out = peerchat(&[
        "send",
        "--name",
        "carol",
        "--bind",
        "127.0.0.1",
        &to,
        "just passing",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    bob.expect("carol (127.0.0.1:");
    bob.expect("): just passing");
    // The sender has said bye and gone; bob's side of it ends a moment later, with no line
    // to wait for (that is the point), so /peers is asked until carol has left the list.
    let until = Instant::now() + PROCESS_WAIT;
    loop {
        bob.type_lines(&["/peers"]);
        let listing = loop {
            let out = bob.expect("Choose an option: ");
            if out.contains("Known peers:") || out.contains("No known peers yet.") {
                break out;
            }
        };
        if listing.contains("No known peers yet.") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the one-shot sender is still listed: {listing}"
        );
        // Polling: nothing is printed when a one-shot session ends.
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = bob.stdout_so_far().to_string();
    assert!(!shown.contains("connected to"), "{shown}");
    assert!(!shown.contains("disconnected from"), "{shown}");
    bob.type_lines(&["/quit"]);
    assert!(bob.wait().success());
}

#[test]
fn dash_sends_every_line_of_standard_input_in_order() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let to = format!("127.0.0.1:{bob_port}");
    let mut input = String::new();
    for i in 1..=2000 {
        input.push_str(&format!("line {i}\n"));
        if i == 1000 {
            input.push_str("\n   \r\n"); // blank lines are skipped
        }
    }
    input.push_str("crlf and no final newline\r");
    let out = peerchat_with_input(
        &["send", "--name", "erin", "--bind", "127.0.0.1", &to, "-"],
        Some(input.into_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("delivered 2001 messages to {to}")),
        "{}",
        stderr(&out)
    );
    bob.expect("): crlf and no final newline");
    let shown = bob.stdout_so_far().to_string();
    let mut from = 0;
    for i in 1..=2000 {
        let line = format!("): line {i}\n");
        match shown[from..].find(&line) {
            Some(at) => from += at + line.len(),
            None => panic!("line {i} missing or out of order"),
        }
    }
    assert_eq!(shown.matches("): line 1\n").count(), 1, "shown twice");
}

#[test]
fn dash_stops_at_a_line_too_long_exit_1() {
    let (_bob, bob_port) = Peerchat::start_named("bob", &[]);
    let mut input = b"fine\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 70_000));
    input.push(b'\n');
    let out = peerchat_with_input(
        &[
            "send",
            "--bind",
            "127.0.0.1",
            &format!("127.0.0.1:{bob_port}"),
            "-",
        ],
        Some(input),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error: line 2 is too long (70000 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn options_after_the_subcommand_apply_to_it() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let port = closed_port().to_string();
    let out = peerchat(&[
        "send",
        &format!("127.0.0.1:{bob_port}"),
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--name",
        "dave",
        "--ack-timeout",
        "5s",
        "--",
        "-1 is a fine first word",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A one-shot sender says it does not listen (`listen_port` 0, protocol v2): it is shown
    // at its connection's address, not at the --port it bound.
    bob.expect("dave (127.0.0.1:");
    let shown = bob.expect("): -1 is a fine first word");
    assert!(!shown.starts_with(&format!("{port})")), "{shown}");
}

#[test]
fn nothing_listening_is_a_clear_failure_exit_1() {
    let refusing = common::RefusingPort::new();
    let port = refusing.port;
    let out = peerchat(&["send", &format!("127.0.0.1:{port}"), "anyone?"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: not delivered to 127.0.0.1:{port}: "))
            && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn a_bad_address_or_a_missing_text_is_a_usage_error_exit_2() {
    for (args, says) in [
        (
            vec!["send", "not-an-address", "hi"],
            "not an address of the form IP:PORT",
        ),
        (vec!["send", "127.0.0.1:0", "hi"], "port 0"),
        (
            vec!["send", "127.0.0.1"],
            "not an address of the form IP:PORT",
        ),
        (vec!["send", "127.0.0.1:9"], "required"),
        (vec!["send", "127.0.0.1:9", "  "], "the message is empty"),
    ] {
        let out = peerchat(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn help_describes_send() {
    let out = peerchat(&["send", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("IP:PORT") && text.contains("TEXT"), "{text}");
    let out = peerchat(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("send") && text.contains("--color"), "{text}");
}
