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
    let tls = config.tls.as_ref().map(|(cert, key)| jadfs_common::links::server_tls(cert, key)).transpose()?;
    let workers = config.workers;
    let header_timeout = config.limits.header_timeout;
    let gateway = Arc::new(Gateway::new(config, storage));
    crate::metrics::describe();
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
