//! The other side of every scenario is a second OS process: this bench binary run again with a
//! hidden subcommand (see `serve.rs`). The parent talks to it by lines: commands on its stdin,
//! answers on its stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::sys::{fail, Res};

/// A child process of the bench; killed when dropped.
pub struct ChildProc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ChildProc {
    /// Runs this executable again with `args` (a hidden subcommand and its options).
    /// With `PEERCHAT_BENCH_WRAP` set (e.g. `valgrind --tool=callgrind`), the child runs
    /// under that command, for profiling.
    pub fn spawn_self(args: &[String]) -> Res<ChildProc> {
        let exe = std::env::current_exe()?;
        let wrap = std::env::var("PEERCHAT_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        Self::spawn(command.args(args), &args.join(" "))
    }

    /// Starts `command` with piped stdin and stdout; its stderr goes to ours.
    pub fn spawn(command: &mut Command, what: &str) -> Res<ChildProc> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            return fail(format!("{what}: no stdout pipe"));
        };
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc {
            what: what.to_string(),
            child,
            stdin,
            lines,
        })
    }

    /// The next line the child prints, waiting at most `limit`.
    pub async fn line(&mut self, limit: Duration) -> Res<String> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => fail(format!("{} ended without answering", self.what)),
            Err(_) => fail(format!("{} said nothing within {limit:?}", self.what)),
        }
    }

    /// Skips lines until one starts with `prefix`; returns the rest of it.
    pub async fn expect(&mut self, prefix: &str, limit: Duration) -> Res<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.line(left).await?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
    }

    /// Sends one command line.
    pub fn command(&mut self, line: &str) -> Res<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return fail(format!("{}: stdin already closed", self.what));
        };
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends a command and returns the rest of the answer line starting with `prefix`.
    pub async fn ask(&mut self, line: &str, prefix: &str, limit: Duration) -> Res<String> {
        self.command(line)?;
        self.expect(prefix, limit).await
    }

    /// The `READY` line of a serving child: the ports it listens on.
    pub async fn ready_ports(&mut self, limit: Duration) -> Res<Vec<u16>> {
        let rest = self.expect("READY", limit).await?;
        let ports = rest
            .split_whitespace()
            .map(|p| p.parse::<u16>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ports)
    }

    /// Descriptors the child has open, counted from outside (a child at its descriptor
    /// limit cannot open /proc/self/fd to count them itself).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// Closes stdin (the child's signal to exit) and waits up to `limit`, then kills it.
    /// The child's process id (the wrapper's, under `PEERCHAT_BENCH_WRAP`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn finish(mut self, limit: Duration) {
        self.stdin = None;
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
