//! Secrets the binary reads or keeps: the root credentials of `jadfs
//! server` (created on first start, kept in the data folder, reused on
//! restart) and the cluster secret every role needs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use jadfs_common::cluster_auth::{ClusterKey, MIN_SECRET_LEN};
use jadfs_common::links::Links;
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
                write_secret_file(path, &serde_json::to_vec_pretty(&credentials)?)?;
                Ok((credentials, true))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a role finds the cluster secret.
#[derive(Args, Clone, Default)]
pub struct ClusterSecretArgs {
    /// The secret every request between JaDFS roles proves, the same on
    /// every node (at least 16 characters). `jadfs server` makes one on
    /// first start and keeps it in its data folder.
    #[arg(long, env = "JADFS_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret, instead of --cluster-secret.
    #[arg(long, env = "JADFS_CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,
}

/// TLS on the links between roles: every meta and storage node serves
/// HTTPS with its certificate, and every role trusts only the cluster's CA.
#[derive(Args, Clone, Default)]
pub struct InternalTlsArgs {
    /// PEM certificate chain this node serves its internal API with (meta
    /// and storage nodes), signed by --internal-tls-ca.
    #[arg(long, env = "JADFS_INTERNAL_TLS_CERT", requires_all = ["internal_tls_key", "internal_tls_ca"])]
    pub internal_tls_cert: Option<PathBuf>,
    /// PEM private key of --internal-tls-cert.
    #[arg(long, env = "JADFS_INTERNAL_TLS_KEY", requires = "internal_tls_cert")]
    pub internal_tls_key: Option<PathBuf>,
    /// PEM certificate of the cluster's CA: internal links are HTTPS, and
    /// only servers with a certificate it signed are trusted.
    #[arg(long, env = "JADFS_INTERNAL_TLS_CA")]
    pub internal_tls_ca: Option<PathBuf>,
}

impl InternalTlsArgs {
    /// How this role reaches the others.
    pub fn links(&self) -> anyhow::Result<Links> {
        Ok(match &self.internal_tls_ca {
            Some(ca) => Links::verified_by(ca)?,
            None => Links::plain(),
        })
    }

    /// What a meta or storage node serves with: TLS if a certificate was
    /// given (a CA without one is refused: a server of the cluster's links
    /// must serve what its clients expect).
    pub fn server(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.internal_tls_cert, &self.internal_tls_key, &self.internal_tls_ca) {
            (Some(cert), Some(key), Some(_)) => Ok(Some(Arc::new(jadfs_common::links::server_tls(cert, key)?))),
            (None, None, None) => Ok(None),
            (None, _, Some(_)) => {
                anyhow::bail!("--internal-tls-ca needs --internal-tls-cert and --internal-tls-key here")
            }
            _ => anyhow::bail!("--internal-tls-cert, --internal-tls-key and --internal-tls-ca go together"),
        }
    }
}

/// The name of the file `jadfs server` keeps its cluster secret in.
pub const CLUSTER_SECRET_FILE: &str = "cluster-secret";

impl ClusterSecretArgs {
    /// The cluster key from the secret given; a role never runs without one.
    pub fn key(&self) -> anyhow::Result<Arc<ClusterKey>> {
        self.given()?.map(|secret| key_of(&secret)).unwrap_or_else(|| {
            anyhow::bail!(
                "no cluster secret: give --cluster-secret, JADFS_CLUSTER_SECRET or --cluster-secret-file \
                 (the same on every node of the cluster); internal APIs never run open"
            )
        })
    }

    /// The cluster key from the secret given, or else the one kept in
    /// `data_dir` (made on first use when `create`). True if made now.
    pub fn key_or_kept(&self, data_dir: &Path, create: bool) -> anyhow::Result<(Arc<ClusterKey>, bool)> {
        if let Some(secret) = self.given()? {
            return Ok((key_of(&secret)?, false));
        }
        let path = data_dir.join(CLUSTER_SECRET_FILE);
        match fs::read_to_string(&path) {
            Ok(secret) => Ok((key_of(&secret)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let secret = hex::encode(rand::random::<[u8; 32]>());
                write_secret_file(&path, secret.as_bytes())?;
                Ok((key_of(&secret)?, true))
            }
            Err(e) => Err(anyhow::anyhow!(
                "no cluster secret given and {} cannot be read: {e} (give --cluster-secret)",
                path.display()
            )),
        }
    }

    fn given(&self) -> anyhow::Result<Option<String>> {
        match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(path)) => {
                let secret = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                Ok(Some(secret))
            }
            (None, None) => Ok(None),
        }
    }
}

fn key_of(secret: &str) -> anyhow::Result<Arc<ClusterKey>> {
    ClusterKey::from_secret(secret)
        .map(Arc::new)
        .map_err(|_| anyhow::anyhow!("the cluster secret must be at least {MIN_SECRET_LEN} characters"))
}

/// Writes a file only its owner may read (0600), atomically and durably.
fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(())
}
