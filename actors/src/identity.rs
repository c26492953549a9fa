//! Who this node is across restarts: its X25519 static keypair, kept in a key file in its data
//! directory, the lock that keeps a second node off that directory, and the fingerprints
//! people compare. Plain data and files, no actors; used by the node at start-up.
//!
//! Fingerprints are in [`crate::key`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::key::{hex, parse_hex_key, Fingerprint, PeerKey};
use crate::noise::{NoiseError, StaticKeypair};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "static_key";

/// The key file of one-shot sends (`peerchat send`) in the data directory: a key of their
/// own, used without the directory's lock, so that a script can send while the node runs.
pub const SEND_KEY_FILE: &str = "send.key";

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "lock";

/// The key file's first line; the second is the private key in hex.
const KEY_FILE_HEADER: &str = "peerchat x25519 static key v1";

/// Longest key file read: a real one is under 100 bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why the node's identity or data directory cannot be used. Each says what to do.
#[derive(Debug)]
pub enum IdentityError {
    /// No data directory can be worked out: neither `XDG_DATA_HOME` nor `HOME` is set.
    NoDataHome,
    /// A node name that cannot be a directory name.
    BadName(String),
    /// Another running node holds the directory's lock.
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about its holder (its process id), if readable.
        holder: Option<String>,
    },
    /// The key file exists but is not a key this code wrote. It is left alone.
    CorruptKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The key file (or lock file) is a symbolic link: not followed.
    Symlink(PathBuf),
    /// The key file can be read by other users.
    KeyFileExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Making a key failed.
    Key(NoiseError),
    /// A file operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NoDataHome => write!(
                f,
                "no data directory: neither XDG_DATA_HOME nor HOME is set; \
                 choose one with --data-dir DIR, or use --ephemeral"
            ),
            IdentityError::BadName(name) => write!(
                f,
                "the name {name:?} cannot name a data directory (empty, `.`, `..` or with `/`); \
                 choose one with --data-dir DIR"
            ),
            IdentityError::InUse { dir, holder } => {
                write!(
                    f,
                    "another peerchat node is using the data directory {}",
                    dir.display()
                )?;
                if let Some(holder) = holder {
                    write!(f, " (process {holder})")?;
                }
                write!(
                    f,
                    "; stop it, or start this one with another name or --data-dir DIR"
                )
            }
            IdentityError::CorruptKey { path, why } => write!(
                f,
                "the key file {} is not a peerchat key ({why}). It was left as it is. \
                 Restore it from a backup to keep this node's identity, or move it away to \
                 make a new one (peers that know the old key will warn that it changed)",
                path.display()
            ),
            IdentityError::Symlink(path) => write!(
                f,
                "{} is a symbolic link, which peerchat does not follow for its key and lock \
                 files; replace it with the file itself",
                path.display()
            ),
            IdentityError::KeyFileExposed { path, mode } => write!(
                f,
                "the key file {} can be read by other users (mode {mode:o}); \
                 run `chmod 600 {}` if it was not read by anyone else, or move it away to \
                 make a new identity",
                path.display(),
                path.display()
            ),
            IdentityError::Key(err) => write!(f, "cannot make a key: {err}"),
            IdentityError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for IdentityError {}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |err| IdentityError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The default data directory of a node called `name`: `$XDG_DATA_HOME/peerchat/NAME`, or
/// `$HOME/.local/share/peerchat/NAME` when `XDG_DATA_HOME` is unset, empty or relative (as
/// the XDG Base Directory specification says).
pub fn default_data_dir(name: &str) -> Result<PathBuf, IdentityError> {
    data_dir_from(
        name,
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_data_dir`] with the environment given.
pub fn data_dir_from(
    name: &str,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, IdentityError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(IdentityError::BadName(name.to_string()));
    }
    let xdg = xdg_data_home
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    let base = match (xdg, home.filter(|h| !h.is_empty())) {
        (Some(xdg), _) => xdg,
        (None, Some(home)) => PathBuf::from(home).join(".local/share"),
        (None, None) => return Err(IdentityError::NoDataHome),
    };
    Ok(base.join("peerchat").join(name))
}

/// Creates `dir` (and its parents) if missing, readable by its owner only.
pub fn create_data_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_at(dir))
}

/// Options that open a file without following a symbolic link, readable by its owner only
/// when created.
pub(crate) fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    }
    options
}

/// Maps "it was a symlink" (O_NOFOLLOW's ELOOP) to a clear error.
fn open_error(path: &Path, err: io::Error) -> IdentityError {
    #[cfg(unix)]
    if err.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
        return IdentityError::Symlink(path.to_path_buf());
    }
    io_at(path)(err)
}

/// Holds a data directory for one running node: a lock on its `lock` file (an advisory
/// `flock`, released by the OS when the process ends however it ends, so a crash leaves no
/// stale lock). Dropped, it lets the directory go.
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    _file: File,
}

impl DataDirLock {
    /// Creates the directory if need be and locks it; [`IdentityError::InUse`] if another
    /// node (in this process or another) holds it.
    pub fn acquire(dir: &Path) -> Result<Self, IdentityError> {
        create_data_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| open_error(&path, err))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = (&file).take(64).read_to_string(&mut holder);
                let holder = Some(holder.trim().to_string()).filter(|h| !h.is_empty());
                return Err(IdentityError::InUse {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(fs::TryLockError::Error(err)) => return Err(io_at(&path)(err)),
        }
        // Who holds it, for the next one's error message; best effort (a full disk must not
        // keep the node from holding its directory).
        if file.set_len(0).is_ok() {
            let _ = writeln!(file, "{}", std::process::id());
        }
        Ok(DataDirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The directory held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether [`load_or_create_key`] found a key or made one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the key file.
    Loaded,
    /// Made now and written to a new key file.
    Created,
}

/// The node's static keypair from `dir`'s key file, made (with snow) and written if there is
/// none: created exclusively with mode 0600, written whole under another name and then
/// linked into place, so a crash never leaves half a key file. A key file that exists but
/// cannot be read as a key is never replaced: [`IdentityError::CorruptKey`]. Hold the
/// directory's [`DataDirLock`] first.
pub fn load_or_create_key(dir: &Path) -> Result<(StaticKeypair, KeyOrigin), IdentityError> {
    load_or_create_key_file(&dir.join(KEY_FILE))
}

/// [`load_or_create_key`] for a key file of any name; its directory must exist.
pub fn load_or_create_key_file(path: &Path) -> Result<(StaticKeypair, KeyOrigin), IdentityError> {
    let path = path.to_path_buf();
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| KEY_FILE.to_string());
    match fs::symlink_metadata(&path) {
        Ok(_) => return load_key(&path).map(|keys| (keys, KeyOrigin::Loaded)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_at(&path)(err)),
    }
    let keys = StaticKeypair::generate().map_err(IdentityError::Key)?;
    // Per process: two one-shot sends making `send.key` at once do not share it.
    let staging = dir.join(format!("{file_name}.new.{}", std::process::id()));
    // Left over from a crash while writing: it never became the key.
    match fs::remove_file(&staging) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_at(&staging)(err)),
    }
    let mut file = private_file_options()
        .write(true)
        .create_new(true)
        .open(&staging)
        .map_err(|err| open_error(&staging, err))?;
    let text = format!("{KEY_FILE_HEADER}\n{}\n", hex(keys.private_bytes()));
    if let Err(err) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        let _ = fs::remove_file(&staging);
        return Err(io_at(&staging)(err));
    }
    drop(file);
    // A hard link never replaces an existing file: if a key appeared meanwhile, it wins.
    let linked = fs::hard_link(&staging, &path);
    let _ = fs::remove_file(&staging);
    match linked {
        Ok(()) => {
            // The new name must survive a crash too.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
            Ok((keys, KeyOrigin::Created))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            load_key(&path).map(|keys| (keys, KeyOrigin::Loaded))
        }
        Err(err) => Err(io_at(&path)(err)),
    }
}

/// Reads a key file written by [`load_or_create_key`].
pub fn load_key(path: &Path) -> Result<StaticKeypair, IdentityError> {
    let file = private_file_options()
        .read(true)
        .open(path)
        .map_err(|err| open_error(path, err))?;
    let metadata = file.metadata().map_err(io_at(path))?;
    let corrupt = |why: &str| IdentityError::CorruptKey {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    if !metadata.is_file() {
        return Err(corrupt("not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyFileExposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_at(path))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(corrupt("far too long"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt("not text"))?;
    let mut lines = text.lines();
    if lines.next() != Some(KEY_FILE_HEADER) {
        return Err(corrupt(&format!(
            "its first line is not `{KEY_FILE_HEADER}`"
        )));
    }
    let hex = lines.next().unwrap_or("").trim();
    if lines.any(|line| !line.trim().is_empty()) {
        return Err(corrupt("lines after the key"));
    }
    let private = parse_hex_key(hex).ok_or_else(|| corrupt("the key is not 64 hex digits"))?;
    StaticKeypair::from_private(private).map_err(IdentityError::Key)
}

/// A node's identity for one run: its keypair and, unless ephemeral, the data directory it
/// holds locked for as long as this lives.
#[derive(Debug)]
pub struct Identity {
    keys: StaticKeypair,
    fingerprint: Fingerprint,
    origin: KeyOrigin,
    lock: Option<DataDirLock>,
}

impl Identity {
    /// Locks `dir` and loads its key, or makes one on first start. A first start on a full
    /// disk, where the new key cannot be written, goes on with a key kept for this run only
    /// (the second value says so, for the user): a full disk does not stop a node, and no
    /// key that exists is ever replaced.
    pub fn open(dir: &Path) -> Result<(Self, Option<String>), IdentityError> {
        let lock = DataDirLock::acquire(dir)?;
        let (keys, origin, warning) = match load_or_create_key(dir) {
            Ok((keys, origin)) => (keys, origin, None),
            Err(IdentityError::Io { path, err })
                if err.kind() == io::ErrorKind::StorageFull
                    && fs::symlink_metadata(dir.join(KEY_FILE)).is_err() =>
            {
                let keys = StaticKeypair::generate().map_err(IdentityError::Key)?;
                let warning = format!(
                    "the node's key could not be saved ({}: {err}): this run uses a key that \
                     is not kept, and peers will see a new identity at the next start; free \
                     space and restart to keep one",
                    path.display()
                );
                (keys, KeyOrigin::Created, Some(warning))
            }
            Err(err) => return Err(err),
        };
        let identity = Identity {
            fingerprint: Fingerprint::of(&keys.public()),
            keys,
            origin,
            lock: Some(lock),
        };
        Ok((identity, warning))
    }

    /// The key in the file `path` (made if missing, its directory too), without any lock: a
    /// one-shot sender's own key beside a running node ([`SEND_KEY_FILE`]).
    pub fn from_key_file(path: &Path) -> Result<Self, IdentityError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_data_dir(dir)?;
        }
        let (keys, origin) = load_or_create_key_file(path)?;
        Ok(Identity {
            fingerprint: Fingerprint::of(&keys.public()),
            keys,
            origin,
            lock: None,
        })
    }

    /// A fresh key kept nowhere (tests, one-shot sends): a new identity each run.
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let keys = StaticKeypair::generate().map_err(IdentityError::Key)?;
        Ok(Identity {
            fingerprint: Fingerprint::of(&keys.public()),
            keys,
            origin: KeyOrigin::Created,
            lock: None,
        })
    }

    /// The keypair, for the handshake.
    pub fn keys(&self) -> &StaticKeypair {
        &self.keys
    }

    /// The public key: who this node is to its peers.
    pub fn public(&self) -> PeerKey {
        self.keys.public()
    }

    /// The public key's fingerprint, for the start-up line and `/status`.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Whether the key was made in this run.
    pub fn origin(&self) -> KeyOrigin {
        self.origin
    }

    /// The data directory held, `None` if ephemeral.
    pub fn data_dir(&self) -> Option<&Path> {
        self.lock.as_ref().map(DataDirLock::dir)
    }

    /// The keypair and the lock, for the node to hold for as long as it runs.
    pub fn into_parts(self) -> (StaticKeypair, Option<DataDirLock>) {
        (self.keys, self.lock)
    }
}

#[cfg(test)]
mod tests {
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
}
