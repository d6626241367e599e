//! The root credentials of `jadfs server`: created on first start, kept in
//! the data folder (mode 0600) and reused on restart.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl Credentials {
    fn generate() -> Credentials {
        let mut rng = rand::thread_rng();
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let access: String = (0..15).map(|_| UPPER[rng.gen_range(0..UPPER.len())] as char).collect();
        Credentials { access_key: format!("JADFS{access}"), secret_key: Alphanumeric.sample_string(&mut rng, 40) }
    }

    /// Reads `path`, or creates it with new random credentials.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Credentials, bool)> {
        match fs::read(path) {
            Ok(raw) => Ok((serde_json::from_slice(&raw)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let credentials = Credentials::generate();
                let tmp = path.with_extension("tmp");
                let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
                file.write_all(&serde_json::to_vec_pretty(&credentials)?)?;
                file.sync_all()?;
                fs::rename(&tmp, path)?;
                fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
                Ok((credentials, true))
            }
            Err(e) => Err(e.into()),
        }
    }
}
