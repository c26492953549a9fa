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
mod tests;
