//! The root credentials of `jadfs server`: created on first start, kept in
//! the data folder (mode 0600) and reused on restart.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl Credentials {
    fn generate() -> Credentials {
        Credentials { access_key: jadfs_common::generate_access_key(), secret_key: jadfs_common::generate_secret_key() }
    }

    /// The credentials given on the command line, or else the ones `jadfs
    /// server` keeps in `data_dir`.
    pub fn given_or_kept(
        access_key: Option<String>,
        secret_key: Option<String>,
        data_dir: &Path,
    ) -> anyhow::Result<Credentials> {
        match (access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => Ok(Credentials { access_key, secret_key }),
            (None, None) => {
                let path = data_dir.join("credentials.json");
                let raw = fs::read(&path).map_err(|e| {
                    anyhow::anyhow!("no --access-key/--secret-key given and {} cannot be read: {e}", path.display())
                })?;
                Ok(serde_json::from_slice(&raw)?)
            }
            _ => anyhow::bail!("give both --access-key and --secret-key, or neither"),
        }
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
