//! Delivery you can trust, in-process: every message ends delivered or failed, none is shown
//! twice, messages from one sender are shown in the order sent, and with a data directory
//! they survive restarts. Each test counts over at least a thousand messages.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use peerchat_actors::faults::{ConnectionFault, Fault};
use peerchat_actors::store::HistoryEntry;
use peerchat_actors::{EventStream, MessageId, Node, NodeEvent, PeerAddr};

const COUNT: usize = 1000;

async fn send_all(from: &Node, to: PeerAddr, count: usize) -> Vec<(MessageId, String)> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let text = format!("msg {i:05}");
        sent.push((from.send_chat(to, text.clone()).await.unwrap(), text));
    }
    sent
}

/// Reads `count` chats from the receiver's stream (in the order shown).
async fn shown(receiver: &mut EventStream, count: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(count);
    while texts.len() < count {
        texts.push(received(receiver).await.1);
    }
    texts
}

/// Every id acked exactly once.
async fn all_acked(sender: &mut EventStream, sent: &[(MessageId, String)]) {
    let wanted: HashSet<MessageId> = sent.iter().map(|(id, _)| *id).collect();
    let mut acked = HashSet::new();
    while acked.len() < wanted.len() {
        match sender.next_within(WAIT).await {
            Some(NodeEvent::Delivered { id, .. }) => {
                assert!(wanted.contains(&id), "unexpected ack {id}");
                assert!(acked.insert(id), "message {id} reported delivered twice");
            }
            Some(NodeEvent::DeliveryFailed { id, reason, .. }) => {
                panic!("message {id} failed: {reason}")
            }
            Some(_) => {}
            None => panic!("{} of {} acked, then nothing", acked.len(), wanted.len()),
        }
    }
}

async fn nothing_more_shown(receiver: &mut EventStream) {
    while let Some(event) = receiver.next_within(Duration::from_millis(300)).await {
        if let NodeEvent::ChatReceived { text, .. } = event {
            panic!("shown again: {text}");
        }
    }
}

fn texts(sent: &[(MessageId, String)]) -> Vec<String> {
    sent.iter().map(|(_, t)| t.clone()).collect()
}

#[actix_rt::test]
async fn acks_lost_then_the_connection_reset_resends_and_shows_once() {
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(fast_config("b")).await;
    let proxy = Proxy::start(b.peer_addr()).await;
    let first = send_all(&a, proxy.addr(), COUNT / 2).await;
    let mut seen = shown(&mut b_ev, COUNT / 2).await;
    // From now on B's frames (its acks) never reach A ...
    proxy.set_black_hole_toward_client(true);
    let second: Vec<_> = {
        let mut more = Vec::new();
        for i in COUNT / 2..COUNT + 200 {
            let text = format!("msg {i:05}");
            more.push((a.send_chat(proxy.addr(), text.clone()).await.unwrap(), text));
        }
        more
    };
    // ... B shows some of them (the frames arrived, the acks are lost) ...
    seen.extend(shown(&mut b_ev, 100).await);
    // ... then the connection is reset.
    proxy.cut_all();
    proxy.heal();
    seen.extend(shown(&mut b_ev, second.len() - 100).await);
    let mut all = first.clone();
    all.extend(second);
    assert_eq!(seen, texts(&all), "every message once, in order");
    all_acked(&mut a_ev, &all).await;
    nothing_more_shown(&mut b_ev).await;
}

#[actix_rt::test]
async fn a_receiver_that_restarts_mid_stream_shows_everything_once() {
    let dir = temp_dir("receiver");
    let port = free_port();
    let mut b_config = fast_config("b");
    b_config.port = port;
    b_config.data_dir = Some(dir.clone());
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(b_config.clone()).await;
    let b_addr = b.peer_addr();
    let mut sent = send_all(&a, b_addr, COUNT / 2).await;
    let mut seen = shown(&mut b_ev, 10).await;
    // B goes away in the middle of the stream (chats in flight) ...
    b.shutdown(Duration::ZERO).await;
    // Whatever the first B showed before it went is in its event stream already.
    while let Some(event) = b_ev.next_within(Duration::from_millis(100)).await {
        if let NodeEvent::ChatReceived { text, .. } = event {
            seen.push(text);
        }
    }
    drop(b_ev);
    // ... more are sent while it is away ...
    for i in COUNT / 2..COUNT {
        let text = format!("msg {i:05}");
        sent.push((a.send_chat(b_addr, text.clone()).await.unwrap(), text));
    }
    // ... and it comes back with its data directory.
    let (_b2, mut b2_ev) = start_with(b_config).await;
    // What the first B showed is recorded; the second shows the rest.
    let remaining: Vec<String> = texts(&sent)
        .into_iter()
        .filter(|t| !seen.contains(t))
        .collect();
    assert!(remaining.len() < COUNT);
    eprintln!(
        "first receiver showed {}, the restarted one {}",
        seen.len(),
        remaining.len()
    );
    seen.extend(shown(&mut b2_ev, remaining.len()).await);
    assert_eq!(seen, texts(&sent), "every message once, in order");
    all_acked(&mut a_ev, &sent).await;
    nothing_more_shown(&mut b2_ev).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_persistent_outbox_delivers_after_the_sender_restarts() {
    let dir = temp_dir("sender");
    let port = free_port();
    let b_addr: PeerAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut a_config = fast_config("a");
    a_config.data_dir = Some(dir.clone());
    let (a, mut a_ev) = start_with(a_config.clone()).await;
    let sent = send_all(&a, b_addr, COUNT).await;
    // B is not there: the messages wait.
    a_ev.wait_for(WAIT, |e| {
        matches!(e, NodeEvent::DeliveryDelayed { .. }).then_some(())
    })
    .await
    .unwrap();
    let peers = a.peers().await.unwrap();
    assert_eq!(peers[0].waiting, COUNT, "menu 2 shows them waiting");
    let report = a.shutdown(Duration::ZERO).await;
    assert_eq!(report.undelivered, COUNT);
    assert!(report.kept);

    // B starts; A starts again from its data directory and delivers.
    let mut b_config = fast_config("b");
    b_config.port = port;
    let (_b, mut b_ev) = start_with(b_config).await;
    let (a2, mut a2_ev) = start_with(a_config).await;
    assert_eq!(a2.key(), a.key(), "the key is kept");
    assert_eq!(shown(&mut b_ev, COUNT).await, texts(&sent));
    all_acked(&mut a2_ev, &sent).await;
    nothing_more_shown(&mut b_ev).await;
    // And once delivered they are not sent again on the next start.
    a2.shutdown(Duration::from_secs(1)).await;
    let (a3, _) = start_with({
        let mut c = fast_config("a");
        c.data_dir = Some(dir.clone());
        c
    })
    .await;
    assert!(a3.peers().await.unwrap().iter().all(|p| p.waiting == 0));
    nothing_more_shown(&mut b_ev).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_dropped_frame_is_resent_after_the_ack_timeout() {
    let mut a_config = fast_config("a");
    a_config.timeouts.ack = Duration::from_millis(300);
    let (a, mut a_ev) = start_with(a_config).await;
    let (b, mut b_ev) = start("b").await;
    a.connect(b.peer_addr()).await.unwrap();
    connected(&mut b_ev, a.peer_addr()).await;
    b.inject(Fault::Connection(
        a.peer_addr(),
        ConnectionFault::DropNext(1),
    ))
    .await
    .unwrap();
    let sent = send_all(&a, b.peer_addr(), 1).await;
    assert_eq!(shown(&mut b_ev, 1).await, texts(&sent));
    all_acked(&mut a_ev, &sent).await;
    nothing_more_shown(&mut b_ev).await;
}

#[actix_rt::test]
async fn history_keeps_the_conversation_in_order() {
    let dir = temp_dir("history");
    let mut a_config = fast_config("a");
    a_config.data_dir = Some(dir.clone());
    let (a, mut a_ev) = start_with(a_config.clone()).await;
    let (b, mut b_ev) = start("b").await;
    let id = a.send_chat(b.peer_addr(), "hello b").await.unwrap();
    delivered(&mut a_ev, id).await;
    received(&mut b_ev).await;
    let id = b.send_chat(a.peer_addr(), "hello a").await.unwrap();
    delivered(&mut b_ev, id).await;
    received(&mut a_ev).await;
    let history = a.history(10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(matches!(&history[0], HistoryEntry::Out { text, .. } if text == "hello b"));
    assert!(
        matches!(&history[1], HistoryEntry::In { text, name, .. } if text == "hello a" && name == "b")
    );
    assert_eq!(a.history(1).await.unwrap().len(), 1);
    // It is a plain file, and it survives a restart.
    a.shutdown(Duration::ZERO).await;
    let file = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 2);
    assert!(file.contains("\"text\":\"hello a\""));
    let (a2, _) = start_with(a_config).await;
    assert_eq!(a2.history(10).await.unwrap(), history);
    let _ = std::fs::remove_dir_all(dir);
}
