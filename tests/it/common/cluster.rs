//! Helpers for tests that run a cluster of separate `jadfs` processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Process {
    child: Child,
    pub addr: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `jadfs ARGS` and waits for the line that names its address.
    pub fn start(args: &[&str], log: &Path) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jadfs"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env("JADFS_CLUSTER_SECRET", super::CLUSTER_SECRET)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn jadfs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = line.split(" listening on ").nth(1).or_else(|| line.split("S3 endpoint: ").nth(1));
                if let Some(addr) = addr {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("jadfs {args:?} did not start"));
        Process { child, addr }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a storage node that registers with the meta nodes in `meta_list`.
pub fn start_storage_node(dir: &Path, name: &str, meta_list: &str, zone: Option<&str>) -> Process {
    let data = dir.join(name).to_string_lossy().into_owned();
    let mut args = vec!["storage-node", "--listen", "127.0.0.1:0", "--data-dir", &data, "--meta", meta_list];
    if let Some(zone) = zone {
        args.extend(["--zone", zone]);
    }
    Process::start(&args, &dir.join(format!("{name}.log")))
}

/// Starts a gateway with the test's root key; `extra` adds flags.
pub fn start_gateway(dir: &Path, name: &str, meta_list: &str, extra: &[&str]) -> Process {
    let mut args = vec!["gateway", "--listen", "127.0.0.1:0", "--meta", meta_list];
    args.extend(["--access-key", super::ACCESS_KEY, "--secret-key", super::SECRET_KEY]);
    args.extend(extra);
    Process::start(&args, &dir.join(format!("{name}.log")))
}

pub fn admin_meta(meta: &str, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_jadfs"))
        .args(["admin", "meta", "--meta", meta])
        .args(args)
        .env("JADFS_CLUSTER_SECRET", super::CLUSTER_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "jadfs admin meta {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// The voters of the newest membership config the node at `addr` knows.
pub async fn voters(meta: &jadfs_meta::MetaClient, addr: &str) -> Vec<u64> {
    let Ok(status) = meta.status(addr).await else { return Vec::new() };
    let configs = status["membership_config"]["membership"]["configs"].as_array().cloned().unwrap_or_default();
    configs.last().and_then(|c| c.as_array().cloned()).unwrap_or_default().iter().filter_map(|v| v.as_u64()).collect()
}
