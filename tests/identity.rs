//! A node's identity across runs, through the binary: its key lives in its data directory
//! (the same key after a restart), `--ephemeral` makes a new one each run, a second node on
//! the same directory is refused, and `peerchat send` works beside a running node with a key
//! of its own. The start-up line shows the key's fingerprint.

mod common;

use std::process::{Command, Stdio};

use common::process::Peerchat;
use common::temp_dir;

/// Starts a node on `dir`, reads the fingerprint from its start-up line, and quits it.
fn key_of_a_run(args: &[&str]) -> String {
    let (mut node, _) = Peerchat::start_named("alice", args);
    let key = node.key().to_string();
    node.type_lines(&["0"]);
    assert!(node.wait().success());
    key
}

fn is_fingerprint(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| "0123456789abcdefghjkmnpqrstvwxyz".contains(c))
        })
}

#[test]
fn the_same_data_directory_keeps_the_same_key_across_restarts() {
    let dir = temp_dir("identity-keep");
    let dir_arg = dir.to_str().unwrap();
    let first = key_of_a_run(&["--data-dir", dir_arg]);
    assert!(is_fingerprint(&first), "{first}");
    let key_file = dir.join("static_key");
    assert!(key_file.is_file(), "the key is kept in the data directory");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let second = key_of_a_run(&["--data-dir", dir_arg]);
    assert_eq!(first, second, "same directory, same key");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ephemeral_makes_a_new_key_each_run_and_keeps_nothing() {
    let first = key_of_a_run(&["--ephemeral"]);
    let second = key_of_a_run(&["--ephemeral"]);
    assert!(is_fingerprint(&first) && is_fingerprint(&second));
    assert_ne!(first, second, "--ephemeral: a new key each run");
}

#[test]
fn the_default_data_directory_is_per_name_under_xdg_data_home() {
    let home = temp_dir("identity-xdg");
    let run = || {
        let mut node = Peerchat::start_exactly_with_env(
            &["--name", "zoe", "--port", "0", "--bind", "127.0.0.1"],
            &[("XDG_DATA_HOME", home.to_str().unwrap())],
        );
        node.listening_port();
        let key = node.key().to_string();
        node.type_lines(&["0"]);
        assert!(node.wait().success());
        key
    };
    let first = run();
    assert!(home.join("peerchat/zoe/static_key").is_file());
    assert_eq!(run(), first, "the default directory keeps the key too");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn a_second_node_on_the_same_data_directory_is_refused() {
    let dir = temp_dir("identity-lock");
    let dir_arg = dir.to_str().unwrap();
    let (mut first, _) = Peerchat::start_named("alice", &["--data-dir", dir_arg]);
    let out = Command::new(env!("CARGO_BIN_EXE_peerchat"))
        .args([
            "--name",
            "alice2",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--data-dir",
            dir_arg,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another peerchat node is using the data directory")
            && stderr.contains(dir_arg)
            && stderr.contains("--data-dir"),
        "{stderr}"
    );
    // The first node is untouched, and once it quits the directory is free again.
    first.type_lines(&["0"]);
    assert!(first.wait().success());
    let (mut again, _) = Peerchat::start_named("alice", &["--data-dir", dir_arg]);
    again.type_lines(&["0"]);
    assert!(again.wait().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn send_works_beside_a_node_running_on_the_same_directory_with_a_key_of_its_own() {
    let dir = temp_dir("identity-send");
    let dir_arg = dir.to_str().unwrap();
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (mut alice, _) = Peerchat::start_named("alice", &["--data-dir", dir_arg]);
    let send = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_peerchat"))
            .args([
                "--data-dir",
                dir_arg,
                "--name",
                "alice",
                "--bind",
                "127.0.0.1",
            ])
            .args(["send", &format!("127.0.0.1:{bob_port}"), text])
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let out = send("from a script");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bob.expect("alice (127.0.0.1:");
    bob.expect("): from a script");
    // Its own key, kept beside the node's, and used again by the next send.
    let send_key = dir.join("send.key");
    let first = std::fs::read(&send_key).expect("send.key was made");
    assert_ne!(first, std::fs::read(dir.join("static_key")).unwrap());
    assert_eq!(send("again").status.code(), Some(0));
    bob.expect("): again");
    assert_eq!(std::fs::read(&send_key).unwrap(), first);
    for node in [&mut alice, &mut bob] {
        node.type_lines(&["0"]);
        assert!(node.wait().success());
    }
    let _ = std::fs::remove_dir_all(dir);
}
