//! A peer that stops reading: it is dropped as too slow once its write buffer is full, the
//! node's memory stays bounded (RSS measured, so this test has a process of its own), and
//! the other peers lose nothing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use peerchat_actors::{NodeConfig, NodeEvent, PeerAddr};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[actix_rt::test]
async fn a_peer_that_stops_reading_is_dropped_as_too_slow_and_others_lose_nothing() {
    let mut config = NodeConfig::local("a");
    config.write_buffer_bytes = 256 * 1024;
    // Only the full write buffer may drop the slow peer here, not its silence.
    config.timeouts.ping_interval = Duration::from_secs(60);
    config.timeouts.idle = Duration::from_secs(120);
    let (a, mut a_ev) = start_with(config).await;
    let (b, mut b_ev) = start("b").await;
    b.connect(a.peer_addr()).await.unwrap();
    // The slow peer: handshakes, then never reads again.
    let raw = RawPeer::handshake(a.peer_addr(), 45678).await;
    let slow: PeerAddr = "127.0.0.1:45678".parse().unwrap();
    let before = rss_kib();
    let text = "x".repeat(1024);
    let mut sent_to_slow = 0;
    let mut b_ids = Vec::new();
    let reason = loop {
        a.send_chat(slow, text.clone()).await.unwrap();
        sent_to_slow += 1;
        if sent_to_slow % 100 == 0 {
            b_ids.push(
                a.send_chat(b.peer_addr(), format!("to b {sent_to_slow}"))
                    .await
                    .unwrap(),
            );
        }
        if let Some(NodeEvent::PeerDisconnected { peer, reason, .. }) =
            a_ev.next_within(Duration::ZERO).await
        {
            if peer == slow {
                break reason;
            }
        }
        assert!(sent_to_slow < 50_000, "the slow peer was never dropped");
    };
    assert!(reason.starts_with("too slow"), "{reason}");
    let grown_kib = rss_kib().saturating_sub(before);
    eprintln!("slow reader dropped after {sent_to_slow} messages; RSS grew {grown_kib} KiB");
    assert!(
        grown_kib < 64 * 1024,
        "memory not bounded: grew {grown_kib} KiB"
    );
    // B lost nothing.
    let mut shown = HashSet::new();
    while shown.len() < b_ids.len() {
        shown.insert(received(&mut b_ev).await.1);
    }
    drop(raw);
}
