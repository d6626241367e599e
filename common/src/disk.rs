//! What a data disk has room for, and a ballast file that keeps room in
//! reserve for the writes that must go on when the disk fills.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// (free, capacity) bytes of the file system holding `path`, as an
/// unprivileged process may use them.
pub fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with NUL"))?;
    // SAFETY: statvfs is plain data; zeroed is a valid value of it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    Ok((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
}

/// Creates `path` holding `len` bytes of allocated disk (not a sparse
/// file), durably; its removal frees them at once.
pub fn create_ballast(path: &Path, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    // SAFETY: fallocate on a descriptor the File owns.
    let allocated = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) } == 0;
    if !allocated {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
        // A file system without fallocate: write the bytes.
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            if let Err(e) = file.write_all(&zeros[..n]) {
                drop(file);
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            left -= n as u64;
        }
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}
