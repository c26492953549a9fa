//! Drives the real `peerchat` binary: piped stdin, stdout and stderr collected by threads, and
//! waits for text to appear, each bounded by a timeout.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PROCESS_WAIT: Duration = Duration::from_secs(15);

pub struct Peerchat {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Output,
    stderr: Output,
    /// The fingerprint its start-up line showed, once read (`listening_port`).
    key: Option<String>,
}

/// Text a child wrote so far, fed by a reader thread.
struct Output {
    rx: mpsc::Receiver<Vec<u8>>,
    text: String,
    /// Where the next `expect` starts looking.
    cursor: usize,
}

impl Output {
    fn new(mut pipe: impl Read + Send + 'static) -> Output {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Output {
            rx,
            text: String::new(),
            cursor: 0,
        }
    }

    fn pull(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(bytes) => {
                self.text.push_str(&String::from_utf8_lossy(&bytes));
                true
            }
            Err(_) => false,
        }
    }

    fn expect(&mut self, needle: &str, what: &str) -> String {
        self.expect_within(needle, what, PROCESS_WAIT)
    }

    fn expect_within(&mut self, needle: &str, what: &str, wait: Duration) -> String {
        let until = Instant::now() + wait;
        loop {
            if let Some(at) = self.text[self.cursor..].find(needle) {
                let end = self.cursor + at + needle.len();
                let seen = self.text[self.cursor..end].to_string();
                self.cursor = end;
                return seen;
            }
            if !self.pull(until) {
                panic!(
                    "{what}: '{needle}' did not appear within {wait:?}; output after cursor:\n{}",
                    &self.text[self.cursor..]
                );
            }
        }
    }

    fn drain(&mut self, until: Instant) {
        while self.pull(until) {}
    }
}

impl Peerchat {
    /// Starts the binary with `args`; with neither `--data-dir` nor `--ephemeral` among
    /// them, `--ephemeral` is added: a test never leaves a key in the user's default data
    /// directory, nor takes the lock of another test's node of the same name.
    pub fn start(args: &[&str]) -> Peerchat {
        let keeps = args
            .iter()
            .any(|a| *a == "--data-dir" || *a == "--ephemeral");
        let help = args.iter().any(|a| *a == "--help" || *a == "--version");
        // First: options after `send`'s text would be part of the text.
        let mut all = Vec::with_capacity(args.len() + 1);
        if !keeps && !help {
            all.push("--ephemeral");
        }
        all.extend_from_slice(args);
        Peerchat::start_exactly(&all)
    }

    /// Starts the binary with exactly `args`.
    pub fn start_exactly(args: &[&str]) -> Peerchat {
        Peerchat::start_exactly_with_env(args, &[])
    }

    /// Starts the binary with exactly `args`, and these variables set in its environment.
    pub fn start_exactly_with_env(args: &[&str], env: &[(&str, &str)]) -> Peerchat {
        let mut command = Command::new(env!("CARGO_BIN_EXE_peerchat"));
        command.args(args).envs(env.iter().copied());
        Peerchat::spawn(command)
    }

    /// Runs `command` (the binary, perhaps behind a wrapper such as `ip netns exec`) with
    /// its standard streams piped.
    pub fn spawn(mut command: Command) -> Peerchat {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peerchat starts");
        let stdout = Output::new(child.stdout.take().unwrap());
        let stderr = Output::new(child.stderr.take().unwrap());
        Peerchat {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            key: None,
        }
    }

    /// Starts a named node on a free port and returns it with its port.
    pub fn start_named(name: &str, extra: &[&str]) -> (Peerchat, u16) {
        let mut args = vec!["--name", name, "--port", "0", "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        let mut node = Peerchat::start(&args);
        let port = node.listening_port();
        node.expect("Choose an option: ");
        (node, port)
    }

    pub fn listening_port(&mut self) -> u16 {
        self.expect("listening on ");
        let line = self.expect("\n");
        // `NAME listening on ADDR (key xxxx-xxxx-xxxx-xxxx-xxxx)`
        self.key = line
            .split_once("(key ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(key, _)| key.to_string());
        let addr = line.split_whitespace().next().unwrap_or_default();
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in '{line}'"))
    }

    /// The fingerprint of the node's key, from its start-up line.
    pub fn key(&self) -> &str {
        self.key
            .as_deref()
            .expect("the start-up line was read and shows a key")
    }

    /// Types lines into the menu.
    pub fn type_lines(&mut self, lines: &[&str]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for line in lines {
            writeln!(stdin, "{line}").expect("write to peerchat's stdin");
        }
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for `needle` on stdout after what earlier expects consumed; returns the text up
    /// to it.
    pub fn expect(&mut self, needle: &str) -> String {
        self.stdout.expect(needle, "stdout")
    }

    /// Like `expect`, with a wait of the caller's choosing.
    pub fn expect_within(&mut self, needle: &str, wait: Duration) -> String {
        self.stdout.expect_within(needle, "stdout", wait)
    }

    /// The stdout not yet consumed by an expect, after waiting `wait` for more.
    pub fn unread_after(&mut self, wait: Duration) -> &str {
        self.stdout.drain(Instant::now() + wait);
        &self.stdout.text[self.stdout.cursor..]
    }

    pub fn expect_stderr(&mut self, needle: &str) -> String {
        self.stderr.expect(needle, "stderr")
    }

    pub fn stdout_so_far(&self) -> &str {
        &self.stdout.text
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to end (bounded) and returns its status.
    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + PROCESS_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.stdout
                    .drain(Instant::now() + Duration::from_millis(500));
                self.stderr
                    .drain(Instant::now() + Duration::from_millis(500));
                return status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "peerchat did not exit within {PROCESS_WAIT:?}; stdout:\n{}",
                    self.stdout.text
                );
            }
            // Polling a child's exit: std has no way to wait on it with a timeout.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Peerchat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
