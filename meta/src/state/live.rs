//! Which file holds the live state. At first `state.db`; each installed
//! snapshot's file then takes its place whole, renamed to `state-<n>.db`
//! (a name of its own, so no WAL of an older file can ever be read into it)
//! and named by `state-current`. So installing a snapshot renames a file
//! instead of copying its pages.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const POINTER: &str = "state-current";
const FIRST: &str = "state.db";

pub struct LiveDb {
    dir: PathBuf,
    /// The generation (0 for `state.db`) and the file of the live state.
    current: Mutex<(u64, PathBuf)>,
}

impl LiveDb {
    /// Reads which file is live, and removes the files of older generations
    /// a crash may have left.
    pub fn open(dir: &Path) -> io::Result<LiveDb> {
        let generation = match std::fs::read_to_string(dir.join(POINTER)) {
            Ok(text) => text.trim().parse().map_err(|_| io::Error::other(format!("{POINTER} is not a number")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let live = LiveDb { dir: dir.to_path_buf(), current: Mutex::new((generation, file_of(dir, generation))) };
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let base = name.trim_end_matches("-wal").trim_end_matches("-shm").trim_end_matches("-journal");
            if let Some(older) = generation_of(base).filter(|&g| g < generation) {
                tracing::info!(file = %name, generation = older, "removing the state of an older generation");
                std::fs::remove_file(dir.join(&name))?;
            }
        }
        Ok(live)
    }

    pub fn current(&self) -> (u64, PathBuf) {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `received` the live state (a rename and a small pointer file,
    /// both durable); the old file's path, for the caller to remove once
    /// nothing uses it, and the new one's.
    pub fn replace(&self, received: &Path) -> io::Result<(PathBuf, PathBuf)> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let generation = current.0 + 1;
        let new = file_of(&self.dir, generation);
        std::fs::File::open(received)?.sync_all()?;
        std::fs::rename(received, &new)?;
        let tmp = self.dir.join(format!("{POINTER}.tmp"));
        std::fs::write(&tmp, generation.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(POINTER))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let old = std::mem::replace(&mut *current, (generation, new.clone()));
        Ok((old.1, new))
    }
}

fn file_of(dir: &Path, generation: u64) -> PathBuf {
    match generation {
        0 => dir.join(FIRST),
        n => dir.join(format!("state-{n}.db")),
    }
}

/// The generation a state file's name says.
fn generation_of(name: &str) -> Option<u64> {
    if name == FIRST {
        return Some(0);
    }
    name.strip_prefix("state-")?.strip_suffix(".db")?.parse().ok()
}

/// Removes a state file that is no longer live, with its WAL and shared memory.
pub fn remove_old(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = ?name, error = %e, "could not remove an old state file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_file_becomes_the_live_state_and_older_ones_go_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.db"), b"first").unwrap();
        let live = LiveDb::open(dir.path()).unwrap();
        assert_eq!(live.current(), (0, dir.path().join("state.db")));
        let received = dir.path().join("receiving-1.db");
        std::fs::write(&received, b"second").unwrap();
        let (old, new) = live.replace(&received).unwrap();
        assert_eq!((old, new.clone()), (dir.path().join("state.db"), dir.path().join("state-1.db")));
        assert_eq!(std::fs::read(&new).unwrap(), b"second");
        assert!(!received.exists());
        // A crash before the old file was removed: the next start removes it.
        std::fs::write(dir.path().join("state.db-wal"), b"old wal").unwrap();
        let reopened = LiveDb::open(dir.path()).unwrap();
        assert_eq!(reopened.current().1, new);
        assert!(!dir.path().join("state.db").exists() && !dir.path().join("state.db-wal").exists());
        assert_eq!(generation_of("state-12.db"), Some(12));
        assert_eq!(generation_of("state-current"), None);
    }
}
