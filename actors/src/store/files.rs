//! The data directory's files, opened safely: owner and mode checked, never through a
//! symlink, temp files created exclusively and renamed into place, appends cut back to a
//! whole line when a write fails.

use super::*;

/// A file written a whole line per `write`, whose length is known so that a failed write can
/// be cut back off (a full disk leaves no torn line for the next line to be glued to).
pub(super) struct Appender {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    pub(super) len: u64,
    /// Why it could not be opened, if so; every write tries again.
    pub(super) unusable: Option<String>,
}

impl Appender {
    pub(super) fn open(path: PathBuf) -> Appender {
        let mut appender = Appender {
            path,
            file: None,
            len: 0,
            unusable: None,
        };
        if let Err(err) = appender.reopen() {
            appender.unusable = Some(err.to_string());
        }
        appender
    }

    pub(super) fn from_file(path: PathBuf, file: File, len: u64) -> Appender {
        Appender {
            path,
            file: Some(file),
            len,
            unusable: None,
        }
    }

    pub(super) fn reopen(&mut self) -> io::Result<()> {
        let file = open_private(&self.path, OpenOptions::new().append(true).create(true))?;
        self.len = file.metadata()?.len();
        self.unusable = None;
        self.file = Some(file);
        Ok(())
    }

    pub(super) fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("not open"));
        };
        match file.write_all(line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Part of the line may have gone out: cut it off again.
                let _ = file.set_len(self.len);
                Err(in_file(&self.path, err))
            }
        }
    }
}

/// What the user may write on the data directory's filesystem, if it can be told.
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    // Both are u64 on Linux but narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (
        u64::from(stats.blocks_available()),
        u64::from(stats.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

/// Creates the directory (0700) if needed and checks that it is private to this user.
pub(super) fn prepare_dir(dir: &Path, warnings: &mut Vec<String>) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot create it: {err}")))?;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is not a directory: choose another --data-dir",
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to another user (uid {}, you are uid {me}); peerchat keeps your \
                 chats only in a directory of your own: choose another --data-dir",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and all other users",
            (true, false) => "its group",
            _ => "all other users",
        };
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it can be written by {who} (mode {mode:o}), who could read or replace your \
                 chats: run `chmod 700 {}` or choose another --data-dir",
                dir.display()
            ),
        ));
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        warnings.push(format!(
            "{} could be read by other users (mode {mode:o}); it is now 700",
            dir.display()
        ));
    }
    Ok(())
}

/// Opens a file in the data directory without following a link, and only if it is a regular
/// file with no other name: new files are 0600, older ones are made 0600.
pub(super) fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    // O_NONBLOCK: a FIFO planted under our name must not block the open; it is refused below.
    let file = options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_file() => not_ours(path, &meta),
            _ => in_file(path, err),
        })?;
    let meta = file.metadata().map_err(|err| in_file(path, err))?;
    if !meta.is_file() {
        return Err(not_ours(path, &meta));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "{} has {} names (hard links): peerchat writes only to files of its own; move it \
             away (the other names were not touched)",
            path.display(),
            meta.nlink()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|err| in_file(path, err))?;
    }
    Ok(file)
}

/// The error for a name in the data directory that is not a regular file.
pub(super) fn not_ours(path: &Path, meta: &fs::Metadata) -> io::Error {
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link (peerchat never follows links in its data directory; the link and \
         what it points to were left alone)"
    } else if kind.is_dir() {
        "a directory, not a file"
    } else if kind.is_fifo() || kind.is_socket() {
        "a pipe or socket, not a file"
    } else {
        "not a regular file"
    };
    io::Error::other(format!("{} is {what}: move it away", path.display()))
}

/// Puts the file's name in an error from the operating system.
pub(super) fn in_file(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// Writes a file whole under a temporary name (created exclusively: never an existing file or
/// a link), flushes it to disk and renames it over `name`. Returns it open for appending.
pub(super) fn replace_file(
    dir: &Path,
    temp: &str,
    name: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<File> {
    let temp_path = dir.join(temp);
    let path = dir.join(name);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if !meta.is_file() {
            return Err(not_ours(&path, &meta));
        }
    }
    // A temporary file left by a crash is ours to remove; anything else under its name is not.
    match fs::symlink_metadata(&temp_path) {
        Ok(meta) if meta.is_file() => {
            fs::remove_file(&temp_path).map_err(|err| in_file(&temp_path, err))?
        }
        Ok(meta) => return Err(not_ours(&temp_path, &meta)),
        Err(_) => {}
    }
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp_path)
        .map_err(|err| in_file(&temp_path, err))?;
    let written = (|| {
        let mut out = BufWriter::new(&file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        fs::rename(&temp_path, &path)
    })();
    match written {
        Ok(()) => Ok(file),
        Err(err) => {
            let _ = fs::remove_file(&temp_path);
            Err(in_file(&path, err))
        }
    }
}

/// A record as one line, newline included: written with one `write`, so a crash leaves at
/// most one torn line, the last.
pub(super) fn to_line(record: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    Ok(line)
}

pub(super) fn record_len(record: &impl Serialize) -> u64 {
    to_line(record).map_or(0, |line| line.len() as u64)
}

pub(super) fn write_record(out: &mut impl Write, record: &impl Serialize) -> io::Result<()> {
    out.write_all(&to_line(record)?)
}
