//! Serving S3 over HTTP or HTTPS.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{web, App};
use jadfs_storage_node::client::StorageClient;

use crate::{router, Gateway, GatewayConfig};

/// A started gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub server: actix_server::Server,
}

/// A rustls server configuration from PEM files (ring provider, TLS 1.2 and 1.3).
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
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

/// Starts serving S3; `storage` reaches the storage nodes (in `jadfs
/// server`, the ones in this process directly). The HTTP service is
/// assembled here rather than by actix-web's HttpServer so that `Expect:
/// 100-continue` requests are authenticated before the client is told to
/// send its body.
pub fn start(config: GatewayConfig, storage: StorageClient) -> std::io::Result<RunningGateway> {
    use actix_http::HttpService;
    use actix_service::{fn_service, map_config};
    use actix_web::dev::AppConfig;

    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let tls = config.tls.as_ref().map(|(cert, key)| tls_config(cert, key)).transpose()?;
    let workers = config.workers;
    let header_timeout = config.limits.header_timeout;
    let gateway = Arc::new(Gateway::new(config, storage));
    // One HTTP service per accepted connection type (plain TCP or TLS).
    macro_rules! s3_service {
        () => {{
            let gw = gateway.clone();
            let app = App::new().app_data(web::Data::new(gw.clone())).configure(router::configure);
            HttpService::build()
                .tcp_nodelay(true)
                .client_request_timeout(header_timeout)
                .expect(fn_service(move |request: actix_http::Request| {
                    let gw = gw.clone();
                    async move { router::expect_continue(&gw, request).await }
                }))
                .finish(map_config(app, |_| AppConfig::default()))
        }};
    }
    let builder = actix_server::Server::build().workers(workers).disable_signals().shutdown_timeout(5);
    let builder = match tls {
        Some(tls) => builder.listen("s3", listener, move || s3_service!().rustls_0_23(tls.clone()))?,
        None => builder.listen("s3", listener, move || s3_service!().tcp())?,
    };
    tracing::info!(%addr, scheme, "S3 gateway started");
    Ok(RunningGateway { addr, scheme, server: builder.run() })
}
