use super::*;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "peerchat-store-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// A directory as a node would have made it (0700), for files planted before it opens.
fn private_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    DirBuilder::new().mode(0o700).create(&dir).unwrap();
    dir
}

fn chat(id: u64) -> QueuedChat {
    QueuedChat {
        id,
        to: "127.0.0.1:9001".into(),
        text: format!("text {id}"),
        sent_at_ms: id,
    }
}

fn shown(id: u64) -> HistoryEntry {
    HistoryEntry::In {
        at_ms: id,
        from: "127.0.0.1:9001".parse().unwrap(),
        name: "bob".into(),
        key: Some(PeerKey::from_bytes([7; 32])),
        id,
        text: format!("line {id}"),
        classic: false,
        cut: false,
    }
}

#[test]
fn pending_chats_survive_a_reopen_and_done_ones_do_not() {
    let dir = temp_dir("reopen");
    {
        let (mut store, recovered) = Store::open(&dir).unwrap();
        assert!(recovered.outbox.is_empty());
        for id in 1..=5 {
            store.queued(&chat(id)).unwrap();
        }
        store.done(2, "delivered").unwrap();
        store.done(4, "failed").unwrap();
    }
    let (_, recovered) = Store::open(&dir).unwrap();
    assert_eq!(recovered.outbox, vec![chat(1), chat(3), chat(5)]);
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    // The outbox was compacted to the three pending chats.
    let text = fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_torn_or_corrupt_file_is_reported_and_the_readable_part_kept() {
    let dir = private_dir("corrupt");
    let good = serde_json::to_string(&OutboxRecord::Queued(chat(1))).unwrap();
    let good2 = serde_json::to_string(&OutboxRecord::Queued(chat(2))).unwrap();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(good.as_bytes());
    bytes.extend_from_slice(b"\n{\"queued\": garbage\n\xff\xfe\n");
    bytes.extend_from_slice(good2.as_bytes());
    bytes.extend_from_slice(b"\n{\"queued\":{\"id\":3,\"to\""); // torn last line
    fs::write(dir.join("outbox.jsonl"), bytes).unwrap();
    fs::write(dir.join("history.jsonl"), "{\"dir\":\"in\"}\n").unwrap();
    let (_, recovered) = Store::open(&dir).unwrap();
    assert_eq!(recovered.outbox, vec![chat(1), chat(2)]);
    assert_eq!(recovered.warnings.len(), 4, "{:?}", recovered.warnings);
    assert!(recovered
        .warnings
        .iter()
        .any(|w| w.contains("outbox.jsonl:2")));
    assert!(recovered.warnings.iter().any(|w| w.contains("not UTF-8")));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_outbox_id_at_the_top_of_the_range_is_renumbered_and_never_wraps() {
    let dir = private_dir("wrap");
    let mut huge = chat(u64::MAX);
    huge.text = "from a corrupt file".into();
    let lines = [
        serde_json::to_string(&OutboxRecord::Queued(chat(5))).unwrap(),
        serde_json::to_string(&OutboxRecord::Queued(huge)).unwrap(),
    ];
    fs::write(dir.join("outbox.jsonl"), lines.join("\n") + "\n").unwrap();
    let (mut store, recovered) = Store::open(&dir).unwrap();
    assert_eq!(recovered.outbox.len(), 2);
    assert_eq!(recovered.outbox[0], chat(5));
    let renumbered = &recovered.outbox[1];
    assert_eq!(renumbered.text, "from a corrupt file");
    assert!(renumbered.id <= MAX_MESSAGE_ID && renumbered.id > 5);
    // What a Registry does next cannot overflow.
    let highest = recovered.outbox.iter().map(|c| c.id).max().unwrap();
    assert!(highest.checked_add(1).is_some_and(|next| next > highest));
    assert!(recovered
        .warnings
        .iter()
        .any(|w| w.contains("out of range")));
    // And the store refuses to write an id above the range itself.
    let err = store.queued(&chat(u64::MAX)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // The new id is what is on disk now.
    drop(store);
    let (_, again) = Store::open(&dir).unwrap();
    assert_eq!(again.outbox, recovered.outbox);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn history_rotates_at_its_cap_and_only_its_tail_is_loaded() {
    let dir = temp_dir("rotate");
    let limits = StoreLimits {
        history_file_bytes: 4096,
        history_tail_bytes: 2048,
        history_tail_entries: 10,
        ..StoreLimits::default()
    };
    let (mut store, _) = Store::open_with(&dir, limits).unwrap();
    for id in 1..=200 {
        store.history(&shown(id)).unwrap();
        let len = fs::metadata(dir.join("history.jsonl")).unwrap().len();
        assert!(len <= 4096, "history.jsonl is {len} bytes");
    }
    assert!(fs::metadata(dir.join("history.1.jsonl")).unwrap().len() <= 4096);
    drop(store);
    let (_, recovered) = Store::open_with(&dir, limits).unwrap();
    let ids: Vec<u64> = recovered
        .history
        .iter()
        .map(|e| match e {
            HistoryEntry::In { id, .. } | HistoryEntry::Out { id, .. } => *id,
        })
        .collect();
    assert_eq!(ids, (191..=200).collect::<Vec<_>>());
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_just_rotated_history_is_loaded_from_the_older_file_too() {
    let dir = temp_dir("rotated-tail");
    let limits = StoreLimits {
        history_file_bytes: 1000,
        history_tail_bytes: 100_000,
        history_tail_entries: 30,
        ..StoreLimits::default()
    };
    let (mut store, _) = Store::open_with(&dir, limits).unwrap();
    for id in 1..=20 {
        store.history(&shown(id)).unwrap();
    }
    drop(store);
    assert!(dir.join("history.1.jsonl").exists());
    let (_, recovered) = Store::open_with(&dir, limits).unwrap();
    let first = match &recovered.history[0] {
        HistoryEntry::In { id, .. } | HistoryEntry::Out { id, .. } => *id,
    };
    let on_disk = fs::read_to_string(dir.join("history.1.jsonl"))
        .unwrap()
        .lines()
        .count()
        + fs::read_to_string(dir.join("history.jsonl"))
            .unwrap()
            .lines()
            .count();
    assert_eq!(recovered.history.len(), on_disk);
    assert_eq!(first as usize, 21 - on_disk);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_outbox_refuses_chats_at_its_cap_and_takes_them_again_after_a_done() {
    let dir = temp_dir("outbox-cap");
    let limits = StoreLimits {
        outbox_chats: 3,
        ..StoreLimits::default()
    };
    let (mut store, _) = Store::open_with(&dir, limits).unwrap();
    for id in 1..=3 {
        store.queued(&chat(id)).unwrap();
    }
    assert!(store.room_for(&chat(4)).is_err());
    let err = store.queued(&chat(4)).unwrap_err();
    let full = OutboxFull::in_error(&err).expect("an OutboxFull");
    assert_eq!(full.chats, 3);
    assert!(err.to_string().contains("outbox is full"), "{err}");
    store.done(1, "delivered").unwrap();
    store.queued(&chat(4)).unwrap();
    drop(store);
    let (_, recovered) = Store::open_with(&dir, limits).unwrap();
    assert_eq!(recovered.outbox, vec![chat(2), chat(3), chat(4)]);

    // The byte budget too.
    let limits = StoreLimits {
        outbox_bytes: 300,
        ..StoreLimits::default()
    };
    let dir2 = temp_dir("outbox-bytes");
    let (mut store, _) = Store::open_with(&dir2, limits).unwrap();
    let mut big = chat(1);
    big.text = "x".repeat(400);
    assert!(OutboxFull::in_error(&store.queued(&big).unwrap_err()).is_some());
    fs::remove_dir_all(dir).unwrap();
    fs::remove_dir_all(dir2).unwrap();
}

#[test]
fn delivered_chats_are_compacted_away_while_the_node_runs() {
    let dir = temp_dir("compact");
    let (mut store, _) = Store::open(&dir).unwrap();
    let text = "y".repeat(1000);
    for id in 1..=3000 {
        let mut c = chat(id);
        c.text = text.clone();
        store.queued(&c).unwrap();
        if id > 2 {
            store.done(id, "delivered").unwrap();
        }
    }
    let len = fs::metadata(dir.join("outbox.jsonl")).unwrap().len();
    assert!(
        len < 2 * 1024 * 1024 + 10_000,
        "outbox.jsonl is {len} bytes"
    );
    drop(store);
    let (_, recovered) = Store::open(&dir).unwrap();
    let ids: Vec<u64> = recovered.outbox.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_over_long_line_is_skipped_without_being_read_into_memory() {
    let dir = private_dir("long-line");
    let mut bytes = vec![b'z'; MAX_LINE_BYTES * 3];
    bytes.push(b'\n');
    bytes.extend_from_slice(
        serde_json::to_string(&OutboxRecord::Queued(chat(9)))
            .unwrap()
            .as_bytes(),
    );
    fs::write(dir.join("outbox.jsonl"), bytes).unwrap();
    let (_, recovered) = Store::open(&dir).unwrap();
    assert_eq!(recovered.outbox, vec![chat(9)]);
    assert!(recovered.warnings.iter().any(|w| w.contains("over")));
    fs::remove_dir_all(dir).unwrap();
}

/// Classic chats (issue 15) are marked `"classic":true` and carry no key; lines written
/// before the mark existed (peerchat chats, with or without a key) still read, unmarked.
#[test]
fn classic_history_lines_are_marked_and_older_lines_still_read() {
    let dir = private_dir("classic");
    let older = concat!(
        r#"{"dir":"in","at_ms":1,"from":"127.0.0.1:9001","name":"bob","key":"#,
        r#""0707070707070707070707070707070707070707070707070707070707070707","id":1,"text":"a"}"#,
        "\n",
        r#"{"dir":"in","at_ms":2,"from":"127.0.0.1:9001","name":"bob","node_id":"x","id":2,"text":"b"}"#,
        "\n",
        r#"{"dir":"out","at_ms":3,"to":"127.0.0.1:9001","id":3,"text":"c"}"#,
        "\n",
    );
    fs::write(dir.join("history.jsonl"), older).unwrap();
    let classic_in = HistoryEntry::In {
        at_ms: 4,
        from: "127.0.0.1:5001".parse().unwrap(),
        name: "Team7".into(),
        key: None,
        id: 0,
        text: "hi".into(),
        classic: true,
        cut: true,
    };
    let classic_out = HistoryEntry::Out {
        at_ms: 5,
        to: "127.0.0.1:5001".parse().unwrap(),
        id: 9,
        text: "hello Team7".into(),
        classic: true,
    };
    {
        let (mut store, recovered) = Store::open(&dir).unwrap();
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        store.history(&classic_in).unwrap();
        store.history(&classic_out).unwrap();
    }
    let file = fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 5);
    // Unchanged lines for peerchat chats: the mark is written only when true.
    assert!(lines[..3]
        .iter()
        .all(|line| !line.contains("classic") && !line.contains("cut")));
    assert!(lines[3].contains(r#""classic":true"#) && !lines[3].contains("key"));
    // A chat read only in part says so.
    assert!(lines[3].contains(r#""cut":true"#));
    assert!(lines[4].contains(r#""classic":true"#));
    let (_, recovered) = Store::open(&dir).unwrap();
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    let marks: Vec<bool> = recovered
        .history
        .iter()
        .map(HistoryEntry::is_classic)
        .collect();
    assert_eq!(marks, [false, false, false, true, true]);
    assert_eq!(recovered.history[3], classic_in);
    assert_eq!(recovered.history[4], classic_out);
    fs::remove_dir_all(dir).unwrap();
}
