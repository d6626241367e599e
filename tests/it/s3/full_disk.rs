//! A full disk is survived: `jadfs server` on a small tmpfs filled by its
//! own objects and then by another file to the last byte. Writes are
//! refused with 507 InsufficientStorage (never a retry-forever 503), reads
//! go on, deletes work and free space, and writes resume by themselves.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use super::{code, status};
use crate::common::*;

/// A tmpfs of `size_mib` mounted at a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None where this process may not mount (not root).
    fn mount(dir: &Path, size_mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file until the file system is full; its length.
fn fill_to_the_end(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 << 10];
    let mut written = 0;
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers_by_itself() {
    let mut server = Server::prepare(&["--disk-reserve", "16MiB", "--gc-grace", "1s", "--chunk-size", "1048576"]);
    let Some(_tmpfs) = Tmpfs::mount(server.data_dir(), 160) else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs this as root)");
        return;
    };
    server.launch(&[]);
    let s3 = server.client();
    s3.create_bucket().bucket("full").send().await.unwrap();

    // Objects of 4 MiB (three copies each) until the nodes' reserve is reached.
    let mut stored = Vec::new();
    let refusal = loop {
        assert!(stored.len() < 40, "160 MiB took more than 40 × 12 MiB");
        let body = random_bytes(4 << 20, stored.len() as u64);
        let key = format!("object-{}", stored.len());
        match s3.put_object().bucket("full").key(&key).body(ByteStream::from(body.clone())).send().await {
            Ok(_) => stored.push((key, sha256(&body))),
            Err(e) => break e,
        }
    };
    assert_eq!((status(&refusal), code(refusal.as_service_error().unwrap()).as_str()), (507, "InsufficientStorage"));
    assert!(stored.len() >= 5, "only {} objects fit", stored.len());
    let read_back = |s3: aws_sdk_s3::Client, stored: Vec<(String, String)>| async move {
        for (key, digest) in stored {
            assert_eq!(sha256(&super::get_bytes(&s3, "full", &key).await), digest, "{key}");
        }
    };
    read_back(s3.clone(), stored.clone()).await;

    // Something else fills the disk to the last byte: the meta node gives
    // up its ballast, takes no data (not even an inline object)...
    let filler = server.data_dir().join("filler");
    fill_to_the_end(&filler);
    wait_until("the meta node releases its ballast", Duration::from_secs(10), || async {
        !server.data_dir().join("meta/ballast").exists()
    })
    .await;
    let small = s3.put_object().bucket("full").key("small").body(ByteStream::from_static(b"tiny")).send().await;
    let small = small.expect_err("a full metadata disk takes no object");
    assert_eq!((status(&small), code(small.as_service_error().unwrap()).as_str()), (507, "InsufficientStorage"));
    // ... but reads, listings and deletes go on.
    read_back(s3.clone(), stored.clone()).await;
    let listed = s3.list_objects_v2().bucket("full").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(stored.len() as i32));
    let deleted: Vec<(String, String)> = stored.drain(..4).collect();
    for (key, _) in &deleted {
        s3.delete_object().bucket("full").key(key).send().await.unwrap();
    }

    // The deleted chunks are collected, and writes resume without a restart.
    let body = random_bytes(4 << 20, 999);
    wait_until("writes resume after deletes", Duration::from_secs(60), || {
        let (s3, body) = (s3.clone(), body.clone());
        async move { s3.put_object().bucket("full").key("after").body(ByteStream::from(body)).send().await.is_ok() }
    })
    .await;
    stored.push(("after".into(), sha256(&body)));
    read_back(s3.clone(), stored.clone()).await;
    for (key, _) in &deleted {
        let gone = s3.get_object().bucket("full").key(key).send().await.expect_err("deleted");
        assert_eq!(status(&gone), 404);
    }
    std::fs::remove_file(&filler).unwrap();
    server.kill();
}
