//! The data directory under attack and on a full disk (issue 13): file modes, planted links left
//! alone, foreign or writable directories refused, a huge history not read whole, and a full
//! disk that makes writes fail loudly but never stops the store (or the node) from opening.
//! Tests that need root (chown to another user, mounting a tiny tmpfs) print a note and pass
//! vacuously elsewhere; CI runs as root.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use peerchat_actors::store::{HistoryEntry, QueuedChat, Store, StoreLimits};
use peerchat_actors::{Node, NodeConfig, NodeEvent, PeerAddr};

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "peerchat-datadir-{tag}-{}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            // Real, effective, saved, filesystem: the effective one decides.
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o777
}

fn chat(id: u64) -> QueuedChat {
    QueuedChat {
        id,
        to: "127.0.0.1:9001".into(),
        text: format!("chat {id}"),
        sent_at_ms: 1,
    }
}

fn shown(id: u64, text: &str) -> HistoryEntry {
    HistoryEntry::In {
        at_ms: id,
        from: "127.0.0.1:9001".parse().unwrap(),
        name: "bob".into(),
        key: Some(peerchat_actors::PeerKey::from_bytes([42; 32])),
        id,
        text: text.into(),
        classic: false,
        cut: false,
    }
}

#[test]
fn a_new_data_directory_is_0700_and_its_files_0600() {
    let parent = temp_dir("modes");
    let dir = parent.join("data");
    let (mut store, recovered) = Store::open(&dir).unwrap();
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    store.queued(&chat(1)).unwrap();
    store.history(&shown(1, "hi")).unwrap();
    assert_eq!(mode(&dir), 0o700);
    for name in ["outbox.jsonl", "history.jsonl"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    fs::remove_dir_all(parent).unwrap();
}

#[test]
fn an_old_world_readable_directory_and_its_files_are_made_private() {
    let dir = temp_dir("tighten");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["outbox.jsonl", "history.jsonl"] {
        let path = dir.join(name);
        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (_store, recovered) = Store::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert!(
        recovered.warnings.iter().any(|w| w.contains("now 700")),
        "{:?}",
        recovered.warnings
    );
    for name in ["outbox.jsonl", "history.jsonl"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_directory_writable_by_group_or_others_is_refused() {
    for (bits, who) in [(0o770, "its group"), (0o703, "all other users")] {
        let dir = temp_dir("writable");
        fs::set_permissions(&dir, fs::Permissions::from_mode(bits)).unwrap();
        let err = Store::open(&dir).err().expect("refused");
        let message = err.to_string();
        assert!(message.contains(who), "{message}");
        assert!(message.contains("chmod 700"), "{message}");
        // Refused means untouched: nothing was created in it.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(mode(&dir), bits);
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("note: not root, cannot chown a directory to another user; test skipped");
        return;
    }
    let dir = temp_dir("foreign");
    let nobody = 65534;
    std::os::unix::fs::chown(&dir, Some(nobody), Some(nobody)).unwrap();
    let err = Store::open(&dir).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("belongs to another user"), "{message}");
    assert!(message.contains("uid 65534"), "{message}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn links_planted_in_the_data_directory_are_never_followed() {
    let dir = temp_dir("links");
    let outside = temp_dir("links-target");
    let names = [
        "outbox.jsonl",
        "outbox.jsonl.new",
        "history.jsonl",
        "history.1.jsonl",
    ];
    for name in names {
        let target = outside.join(name);
        fs::write(&target, "precious").unwrap();
        symlink(&target, dir.join(name)).unwrap();
    }
    // A dangling link too: following it would create the file it names.
    fs::remove_file(outside.join("history.1.jsonl")).unwrap();

    let limits = StoreLimits {
        history_file_bytes: 200,
        ..StoreLimits::default()
    };
    let (mut store, recovered) = Store::open_with(&dir, limits).expect("opens, degraded");
    assert!(store.degraded().is_some());
    assert!(
        recovered
            .warnings
            .iter()
            .any(|w| w.contains("symbolic link")),
        "{:?}",
        recovered.warnings
    );
    // Every write fails, each saying why; none claims success.
    let err = store.queued(&chat(1)).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    for id in 0..10 {
        let err = store
            .history(&shown(id, "a peer's text"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
    drop(store);
    // The links are still links, and what they point to is as it was.
    for name in names {
        let link = dir.join(name);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name}"
        );
        let target = outside.join(name);
        if name == "history.1.jsonl" {
            assert!(!target.exists(), "a dangling link was followed");
        } else {
            assert_eq!(fs::read_to_string(&target).unwrap(), "precious", "{name}");
        }
    }
    fs::remove_dir_all(dir).unwrap();
    fs::remove_dir_all(outside).unwrap();
}

#[test]
fn rotation_never_renames_over_a_link_or_writes_through_one() {
    let dir = temp_dir("rotate-link");
    let outside = temp_dir("rotate-link-target");
    fs::write(outside.join("old"), "precious").unwrap();
    symlink(outside.join("old"), dir.join("history.1.jsonl")).unwrap();
    let limits = StoreLimits {
        history_file_bytes: 300,
        ..StoreLimits::default()
    };
    let (mut store, _) = Store::open_with(&dir, limits).unwrap();
    let mut failures = 0;
    for id in 0..20 {
        if store.history(&shown(id, "some words")).is_err() {
            failures += 1;
        }
    }
    // Once history.jsonl is at its cap it cannot rotate: the writes fail, reported.
    assert!(failures > 0);
    assert!(fs::metadata(dir.join("history.jsonl")).unwrap().len() <= 300);
    assert_eq!(fs::read_to_string(outside.join("old")).unwrap(), "precious");
    fs::remove_dir_all(dir).unwrap();
    fs::remove_dir_all(outside).unwrap();
}

/// Bytes this thread has read through read(2) and friends so far.
fn bytes_read_by_this_thread() -> Option<u64> {
    let io = fs::read_to_string("/proc/thread-self/io").ok()?;
    let line = io.lines().find(|l| l.starts_with("rchar:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_huge_history_is_loaded_from_its_tail_without_reading_it_whole() {
    let dir = temp_dir("huge-history");
    let path = dir.join("history.jsonl");
    {
        // 1 GiB of a sparse hole (no disk used), then 3000 real entries.
        let file = fs::File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap();
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut lines = b"\n".to_vec();
        for id in 1..=3000 {
            lines.extend_from_slice(&serde_json::to_vec(&shown(id, "x")).unwrap());
            lines.push(b'\n');
        }
        file.write_all(&lines).unwrap();
    }
    let limits = StoreLimits::default();
    let before = bytes_read_by_this_thread();
    let (_store, recovered) = Store::open_with(&dir, limits).unwrap();
    let after = bytes_read_by_this_thread();
    assert_eq!(recovered.history.len(), limits.history_tail_entries);
    let HistoryEntry::In { id: last, .. } = recovered.history.last().unwrap() else {
        panic!("not an In entry");
    };
    assert_eq!(*last, 3000);
    match (before, after) {
        (Some(before), Some(after)) => {
            let read = after - before;
            assert!(
                read <= limits.history_tail_bytes + 1024 * 1024,
                "{read} bytes read to open a 1 GiB history"
            );
        }
        _ => eprintln!("note: no /proc/thread-self/io here; bytes read not measured"),
    }
    fs::remove_dir_all(dir).unwrap();
}

/// A tiny tmpfs, unmounted (and its mount point removed) when dropped, even if a test fails.
struct TinyDisk {
    mount_point: PathBuf,
}

impl TinyDisk {
    /// `None` (with a note) where it cannot be mounted: not root, or no tmpfs.
    fn mount(tag: &str) -> Option<TinyDisk> {
        if !is_root() {
            eprintln!("note: not root, cannot mount a tiny tmpfs; full-disk test skipped");
            return None;
        }
        let mount_point = temp_dir(tag);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(&mount_point)
            .status();
        match status {
            Ok(status) if status.success() => Some(TinyDisk { mount_point }),
            other => {
                eprintln!("note: cannot mount a tmpfs ({other:?}); full-disk test skipped");
                let _ = fs::remove_dir(&mount_point);
                None
            }
        }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.mount_point.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = [b'f'; 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => panic!("filling the tmpfs: {err}"),
            }
        }
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mount_point)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it open: detach it now, it goes when released.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
        let _ = fs::remove_dir(&self.mount_point);
    }
}

fn is_full(err: &io::Error) -> bool {
    err.raw_os_error() == Some(28) || err.to_string().contains("No space left")
}

#[test]
fn on_a_full_disk_writes_fail_loudly_and_the_store_still_opens() {
    let Some(disk) = TinyDisk::mount("full-disk") else {
        return;
    };
    let dir = disk.mount_point.join("data");
    let (mut store, recovered) = Store::open(&dir).unwrap();
    assert!(store.degraded().is_none(), "{:?}", recovered.warnings);
    store.queued(&chat(1)).unwrap();
    store.history(&shown(1, "before")).unwrap();
    let outbox_before = fs::read(dir.join("outbox.jsonl")).unwrap();
    let filler = disk.fill();

    // A chat a little larger than what could be left: the write fails and says so.
    let mut big = chat(2);
    big.text = "z".repeat(8 * 1024);
    let err = store.queued(&big).unwrap_err();
    assert!(is_full(&err), "{err}");
    assert!(err.to_string().contains("outbox.jsonl"), "{err}");
    let err = store.history(&shown(2, &"w".repeat(8 * 1024))).unwrap_err();
    assert!(is_full(&err), "{err}");
    // No torn line was left for the next write to be glued to.
    assert_eq!(fs::read(dir.join("outbox.jsonl")).unwrap(), outbox_before);
    drop(store);

    // Reopened on the full disk: it opens, degraded, saying so, with what it had.
    let (store, recovered) = Store::open(&dir).expect("opens on a full disk");
    assert!(store.degraded().is_some_and(|why| why.contains("full")));
    assert!(
        recovered
            .warnings
            .iter()
            .any(|w| w.contains("degraded") && w.contains("full")),
        "{:?}",
        recovered.warnings
    );
    assert_eq!(recovered.outbox, vec![chat(1)]);
    assert_eq!(recovered.history.len(), 1);
    drop(store);

    // Space freed: writes work again without a restart of anything but the store.
    fs::remove_file(filler).unwrap();
    let (mut store, _) = Store::open(&dir).unwrap();
    store.queued(&big).unwrap();
    drop(store);
    assert_eq!(Store::open(&dir).unwrap().1.outbox, vec![chat(1), big]);
}

#[test]
fn a_new_data_directory_on_a_full_disk_still_opens_degraded() {
    let Some(disk) = TinyDisk::mount("full-disk-new") else {
        return;
    };
    disk.fill();
    let dir = disk.mount_point.join("data");
    let (mut store, recovered) = Store::open(&dir).expect("opens on a full disk");
    assert!(store.degraded().is_some(), "{:?}", recovered.warnings);
    let err = store.queued(&chat(1)).unwrap_err();
    assert!(is_full(&err), "{err}");
}

#[actix_rt::test]
async fn a_node_on_a_full_disk_starts_and_says_it_runs_degraded() {
    let Some(disk) = TinyDisk::mount("full-disk-node") else {
        return;
    };
    disk.fill();
    let mut config = NodeConfig::local("full");
    config.data_dir = Some(disk.mount_point.join("data"));
    let node = Node::start(config)
        .await
        .expect("a full disk does not stop the start");
    let warnings = node.warnings().join("\n");
    assert!(warnings.contains("degraded"), "{warnings}");
    assert!(warnings.contains("key could not be saved"), "{warnings}");
    node.shutdown(std::time::Duration::ZERO).await;
}

/// Issue 13: a chat typed while the disk was full was accepted, never written, and said to be
/// `kept in the data directory` at quit. Now it is reported `not saved` at once and never
/// claimed kept; the history writes that fail for incoming chats are said once, not per chat.
#[actix_rt::test]
async fn a_chat_on_a_full_disk_is_reported_not_saved_and_never_claimed_kept() {
    let Some(disk) = TinyDisk::mount("full-disk-chat") else {
        return;
    };
    let mut config = NodeConfig::local("full");
    config.data_dir = Some(disk.mount_point.join("data"));
    let node = Node::start(config).await.unwrap();
    let mut events = node.events();
    disk.fill();
    let nobody = common::RefusingPort::new();
    let to: PeerAddr = nobody.addr().parse().unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(node.send_chat(to, format!("typed {n}")).await.unwrap());
    }
    for id in &ids {
        let error = events
            .wait_for(common::WAIT, |e| match e {
                NodeEvent::NotSaved { id: i, error, .. } if i == id => Some(error.clone()),
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("chat {id} never reported not saved: {e}"));
        assert!(error.contains("No space left"), "{error}");
    }
    // Five chats from a peer: their history lines fail; said once.
    let (sender, mut sender_events) = common::start("sender").await;
    let texts: Vec<String> = (0..5).map(|n| format!("in {n}")).collect();
    let sent = sender.send_chats(node.peer_addr(), texts).await.unwrap();
    for id in sent {
        common::delivered(&mut sender_events, id).await;
    }
    let mut storage_failures = 0;
    while let Ok(Some(event)) = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        futures::StreamExt::next(&mut events),
    )
    .await
    {
        if let NodeEvent::StorageFailed { error } = event {
            assert!(error.contains("No space left"), "{error}");
            storage_failures += 1;
        }
    }
    assert_eq!(storage_failures, 1, "a failing disk is reported once");
    let report = node.shutdown(std::time::Duration::ZERO).await;
    assert_eq!(report.undelivered, 3);
    assert_eq!(report.not_saved, 3);
    sender.shutdown(std::time::Duration::ZERO).await;
}
