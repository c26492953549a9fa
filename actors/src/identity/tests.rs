use super::*;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "peerchat-identity-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_key_is_made_once_then_loaded_and_private_to_its_owner() {
    let tmp = TempDir::new("key");
    let dir = tmp.0.join("nested/alice");
    let first = Identity::open(&dir).unwrap().0;
    assert_eq!(first.origin(), KeyOrigin::Created);
    let public = first.public();
    drop(first);
    let again = Identity::open(&dir).unwrap().0;
    assert_eq!(again.origin(), KeyOrigin::Loaded);
    assert_eq!(again.public(), public);
    assert_eq!(again.data_dir(), Some(dir.as_path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }
    assert!(!dir.join(format!("{KEY_FILE}.new")).exists());
    // An ephemeral identity is new each time, and holds no directory.
    let a = Identity::ephemeral().unwrap();
    let b = Identity::ephemeral().unwrap();
    assert_ne!(a.public(), b.public());
    assert_eq!(a.data_dir(), None);
}

#[test]
fn a_second_node_on_the_directory_is_refused_until_the_first_lets_go() {
    let tmp = TempDir::new("lock");
    let first = Identity::open(&tmp.0).unwrap().0;
    let err = Identity::open(&tmp.0).unwrap_err();
    match &err {
        IdentityError::InUse { dir, holder } => {
            assert_eq!(dir, &tmp.0);
            assert_eq!(holder.as_deref(), Some(&*std::process::id().to_string()));
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains("another peerchat node is using"), "{text}");
    drop(first);
    Identity::open(&tmp.0).unwrap();
}

#[test]
fn a_corrupt_key_file_is_reported_and_left_as_it_is() {
    let tmp = TempDir::new("corrupt");
    let path = tmp.0.join(KEY_FILE);
    let cases: [&[u8]; 6] = [
        b"",
        b"garbage",
        b"peerchat x25519 static key v1\n",
        b"peerchat x25519 static key v1\n0123\n",
        b"peerchat x25519 static key v1\nzz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n",
        &[0xff, 0xfe, 0x00],
    ];
    for bytes in cases {
        fs::write(&path, bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = Identity::open(&tmp.0).unwrap_err();
        assert!(
            matches!(err, IdentityError::CorruptKey { .. }),
            "{bytes:?}: {err}"
        );
        assert!(err.to_string().contains("left as it is"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "never replaced");
    }
    // A well-formed file loads.
    let keys = StaticKeypair::generate().unwrap();
    let text = format!("{KEY_FILE_HEADER}\n{}\n", hex(keys.private_bytes()));
    fs::write(&path, text).unwrap();
    assert_eq!(Identity::open(&tmp.0).unwrap().0.public(), keys.public());
}

#[cfg(unix)]
#[test]
fn symlinks_and_exposed_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("links");
    let elsewhere = tmp.0.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    // A key file that is a symlink, even to a good key: refused, not followed.
    let good = elsewhere.join("key");
    let keys = StaticKeypair::generate().unwrap();
    fs::write(
        &good,
        format!("{KEY_FILE_HEADER}\n{}\n", hex(keys.private_bytes())),
    )
    .unwrap();
    fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
    let dir = tmp.0.join("node");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&good, dir.join(KEY_FILE)).unwrap();
    assert!(matches!(
        load_or_create_key(&dir),
        Err(IdentityError::Symlink(_))
    ));
    // A dangling symlink where the key would be created: not written through.
    let dir2 = tmp.0.join("node2");
    fs::create_dir_all(&dir2).unwrap();
    let target = elsewhere.join("planted");
    std::os::unix::fs::symlink(&target, dir2.join(KEY_FILE)).unwrap();
    assert!(load_or_create_key(&dir2).is_err());
    assert!(!target.exists(), "nothing written through the link");
    // The lock file as a symlink: refused.
    let dir3 = tmp.0.join("node3");
    fs::create_dir_all(&dir3).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("lockfile"), dir3.join(LOCK_FILE)).unwrap();
    assert!(matches!(
        DataDirLock::acquire(&dir3),
        Err(IdentityError::Symlink(_))
    ));
    // A key file others can read: refused with what to do.
    let dir4 = tmp.0.join("node4");
    let (keys, _) = {
        create_data_dir(&dir4).unwrap();
        load_or_create_key(&dir4).unwrap()
    };
    let path = dir4.join(KEY_FILE);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create_key(&dir4).unwrap_err();
    assert!(
        matches!(err, IdentityError::KeyFileExposed { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(load_or_create_key(&dir4).unwrap().0.public(), keys.public());
}

#[test]
fn the_default_data_dir_follows_xdg_then_home() {
    let os = |s: &str| Some(OsString::from(s));
    assert_eq!(
        data_dir_from("alice", os("/x/data"), os("/home/a")).unwrap(),
        PathBuf::from("/x/data/peerchat/alice")
    );
    for xdg in [None, os(""), os("relative/dir")] {
        assert_eq!(
            data_dir_from("alice", xdg, os("/home/a")).unwrap(),
            PathBuf::from("/home/a/.local/share/peerchat/alice")
        );
    }
    assert!(matches!(
        data_dir_from("alice", None, None),
        Err(IdentityError::NoDataHome)
    ));
    for bad in ["", ".", "..", "a/b", "a\0b"] {
        assert!(matches!(
            data_dir_from(bad, None, os("/home/a")),
            Err(IdentityError::BadName(_))
        ));
    }
    // Names with spaces and non-ASCII letters are fine.
    assert!(data_dir_from("Zoë M", None, os("/h")).is_ok());
}
