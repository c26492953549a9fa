//! Console flow control with the real binary (issue 13: a stdout pipe nobody read froze the
//! whole node after 200 chats). Its stdout is a pipe, or a pseudo-terminal (then the line
//! editor prints), that the test stops reading: the node keeps
//! answering pings and handshakes, the flooding peer is slowed (its chats are acked only once
//! shown), memory stays bounded; once the pipe is read again every chat is shown once and
//! acked.

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use peerchat_actors::wire::{encode_frame, Frame};
use peerchat_actors::PeerAddr;
use tokio::io::AsyncWriteExt;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Kills the child however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a ping and waits for its pong (answering the node's own pings meanwhile).
async fn ping(peer: &mut RawPeer, nonce: u64) -> Duration {
    let sent = Instant::now();
    peer.send(&Frame::Ping { nonce }).await;
    loop {
        match peer.next().await {
            Some(Frame::Pong { nonce: n }) if n == nonce => return sent.elapsed(),
            Some(Frame::Ping { nonce }) => peer.send(&Frame::Pong { nonce }).await,
            Some(_) => {}
            None => panic!("the pinging peer was disconnected"),
        }
    }
}

fn peerchat() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peerchat"));
    command
        .args([
            "--ephemeral",
            "--name",
            "flow",
            "--port",
            "0",
            "--color",
            "never",
        ])
        .args(["--bind", "127.0.0.1", "--no-discovery"]);
    command
}

/// Reads until the start-up line's `127.0.0.1:PORT`.
fn listening_at(output: &mut impl Read) -> PeerAddr {
    let mut seen = String::new();
    let mut byte = [0u8; 1];
    while output.read(&mut byte).unwrap_or(0) == 1 {
        seen.push(byte[0] as char);
        if let Some(at) = seen.find("127.0.0.1:") {
            let rest = &seen[at..];
            if let Some(end) = rest.find([' ', '\r', '\n']) {
                return rest[..end].parse().unwrap();
            }
        }
    }
    panic!("no address in {seen:?}")
}

#[actix_rt::test]
async fn a_stuck_stdout_slows_the_sender_but_never_stops_the_node() {
    let mut child = peerchat()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peerchat starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let stdin = child.stdin.take();
    let child = Killed(child);
    // The start-up line says where it listens; after it, nobody reads stdout for a while.
    let node = listening_at(&mut stdout);
    stuck_then_read(node, child, stdout, Box::new(stdin)).await;
}

/// The same on a terminal: the binary's stdin and stdout are a pseudo-terminal (its line
/// editor's printer, not the plain screen), whose reading end the test stops reading.
#[actix_rt::test]
async fn a_stuck_terminal_slows_the_sender_but_never_stops_the_node() {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave = std::fs::File::from(pty.slave);
    let child = peerchat()
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("peerchat starts");
    drop(slave);
    let child = Killed(child);
    let mut master = std::fs::File::from(pty.master);
    let node = listening_at(&mut master);
    let input = master.try_clone().unwrap();
    stuck_then_read(node, child, master, Box::new(input)).await;
}

/// A flood of 3,000 chats while nobody reads the node's output for 3 s, then reading again.
async fn stuck_then_read(
    node: PeerAddr,
    child: Killed,
    mut stdout: impl Read + Send + 'static,
    stdin: Box<dyn std::any::Any>,
) {
    let pid = child.0.id();

    let count = 3000u64;
    let flood = RawPeer::handshake(node, 0).await;
    let (mut from_node, mut to_node, mut sealer) = flood.into_parts();
    let writer = actix_rt::spawn(async move {
        for id in 0..count {
            let chat = Frame::Chat {
                id,
                text: format!("flood-{id:05}-{}", "x".repeat(1000)),
                sent_at_ms: 0,
            };
            let mut sealed = bytes::BytesMut::new();
            sealer
                .seal_frames(&encode_frame(&chat).unwrap(), &mut sealed)
                .unwrap();
            to_node
                .write_all(&sealed)
                .await
                .expect("the node keeps the flood's connection");
        }
        to_node
    });
    let (acks_tx, mut acks_rx) = futures::channel::mpsc::unbounded();
    let acker = actix_rt::spawn(async move {
        while let Some(Ok(frame)) = from_node.next().await {
            match frame {
                Frame::Ack { id } => {
                    let _ = acks_tx.unbounded_send(id);
                }
                Frame::Bye { reason } => panic!("the flooding peer got bye {reason:?}"),
                _ => {}
            }
        }
    });

    // stdout stuck for 3 s: another peer's pings are answered, a new peer gets in.
    let mut pinger = RawPeer::handshake(node, 0).await;
    let stuck_until = Instant::now() + Duration::from_secs(3);
    let mut worst = Duration::ZERO;
    let mut nonce = 0;
    while Instant::now() < stuck_until {
        nonce += 1;
        worst = worst.max(ping(&mut pinger, nonce).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        worst < Duration::from_secs(1),
        "a ping took {worst:?} while stdout was stuck"
    );
    let mut newcomer = RawPeer::handshake(node, 0).await;
    ping(&mut newcomer, 1).await;
    let mut acked = std::collections::HashSet::new();
    while let Ok(Some(id)) = tokio::time::timeout(Duration::ZERO, acks_rx.next()).await {
        acked.insert(id);
    }
    assert!(
        (acked.len() as u64) < count / 2,
        "{} chats acked while stdout was stuck: acked before they were shown",
        acked.len()
    );
    let rss = rss_kib(pid);
    assert!(rss < 128 * 1024, "RSS {rss} KiB with stdout stuck");
    eprintln!(
        "stdout stuck 3 s: worst ping {worst:?}, {} acks, RSS {rss} KiB",
        acked.len()
    );

    // Read again: every chat is shown once and acked.
    let reader = std::thread::spawn(move || {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut text = String::new();
        let mut buf = vec![0u8; 64 * 1024];
        let until = Instant::now() + Duration::from_secs(60);
        while seen.len() < count as usize && Instant::now() < until {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            // Whole lines only; the rest waits for the next read.
            let end = text.rfind('\n').map_or(0, |at| at + 1);
            for line in text[..end].lines() {
                if let Some(at) = line.find("flood-") {
                    if let Ok(id) = line[at + 6..at + 11].parse::<u64>() {
                        *seen.entry(id).or_default() += 1;
                    }
                }
            }
            text.drain(..end);
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while (acked.len() as u64) < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, acks_rx.next()).await {
            Ok(Some(id)) => {
                acked.insert(id);
            }
            _ => panic!(
                "{} of {count} chats acked after stdout was read again",
                acked.len()
            ),
        }
    }
    let seen = reader.join().unwrap();
    assert_eq!(seen.len() as u64, count, "chats shown");
    assert!(seen.values().all(|n| *n == 1), "a chat shown twice");
    drop((writer, acker, stdin, child));
}
