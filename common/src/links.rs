//! How roles reach one another: plain HTTP, or HTTPS whose servers are
//! checked against the cluster's own certificate authority (TLS on the
//! internal links, `--internal-tls-*`). Every internal client is built
//! here, with the settings they all share; this and reading the TLS files
//! are the only I/O of this crate.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Nodes are on the same network: a connection that takes longer than this
/// is to a node that is down or cut off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct Links {
    /// The cluster's CA, under TLS: the only root its clients trust.
    ca: Option<reqwest::Certificate>,
}

impl Links {
    /// Plain HTTP.
    pub fn plain() -> Links {
        Links::default()
    }

    /// HTTPS, trusting only the CA certificates (PEM) in `ca`.
    pub fn verified_by(ca: &Path) -> io::Result<Links> {
        let pem = std::fs::read(ca).map_err(|e| annotate(e, &format!("reading {}", ca.display())))?;
        let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| invalid(&format!("CA {}", ca.display()), &e))?;
        Ok(Links { ca: Some(ca) })
    }

    pub fn scheme(&self) -> &'static str {
        if self.ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The URL of `path` (with its query) on the role at `addr` (`host:port`).
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme())
    }

    /// A client for internal requests: TCP_NODELAY, a short connect timeout,
    /// and under TLS the cluster's CA as the only root (and HTTPS only).
    pub fn client(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().tcp_nodelay(true).connect_timeout(CONNECT_TIMEOUT);
        match &self.ca {
            Some(ca) => builder.tls_built_in_root_certs(false).add_root_certificate(ca.clone()).https_only(true),
            None => builder,
        }
    }
}

/// A TLS server configuration from PEM files: certificate chain and private
/// key (ring provider, TLS 1.2 and 1.3).
pub fn server_tls(cert: &Path, key: &Path) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(&format!("TLS certificate {}", cert.display()), &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(&format!("TLS key {}", key.display()), &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("TLS certificate and key", &e))
}

fn invalid(what: &str, e: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
