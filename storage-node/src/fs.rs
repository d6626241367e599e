//! File-system helpers with the durability and alignment rules the store
//! relies on: folders created and files replaced durably, O_DIRECT toggled,
//! buffers aligned for it, free space.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Alignment of O_DIRECT reads and writes (file offsets, lengths, memory).
pub const DIRECT_ALIGN: usize = 4096;

/// Turns O_DIRECT on or off for a file's further reads and writes. A file
/// system without it refuses to turn it on.
pub fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL on a descriptor the File owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A zeroed buffer of `len` bytes plus slack, and where in it the region
/// aligned for O_DIRECT starts.
pub fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + DIRECT_ALIGN];
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    (buf, start)
}

/// Creates a folder (and its parents) and fsyncs each parent that gained an
/// entry, so the folder survives power loss.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_durable(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent),
        _ => Ok(()),
    }
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a small file atomically and durably: temp file, fsync, rename, fsync folder.
pub fn write_file_durable(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub use jadfs_common::disk::disk_space;
