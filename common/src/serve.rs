//! What the internal HTTP servers (meta and storage nodes) share: the
//! cluster-auth check every request passes, and TCP_NODELAY on accepted
//! connections.

use actix_web::dev::{Extensions, ServiceRequest};
use actix_web::web;

use crate::cluster_auth::{self, AuthError, Verifier};

/// Whether `req` proves the cluster secret to the [`Verifier`] in the app
/// data; `/health` is open, and `/metrics` has its own check (Prometheus
/// cannot sign: [`crate::metrics::respond`]). A refusal is logged with the
/// peer's address.
pub fn check_cluster_auth(req: &ServiceRequest) -> Result<(), AuthError> {
    if req.path() == "/health" || req.path() == "/metrics" {
        return Ok(());
    }
    let checked = match req.app_data::<web::Data<Verifier>>() {
        Some(verifier) => {
            let header = req.headers().get(cluster_auth::HEADER).and_then(|v| v.to_str().ok());
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            verifier.check(req.method().as_str(), path, header, crate::now_ms() / 1000)
        }
        None => Err(AuthError::Missing),
    };
    if let Err(e) = &checked {
        tracing::warn!(peer = ?req.peer_addr(), path = req.path(), error = %e, "refused an internal request");
    }
    checked
}

/// Turns off Nagle's algorithm on an accepted connection (`on_connect`): a
/// response's headers and first body bytes are separate small writes, and
/// Nagle would hold the second until the peer's delayed ACK (40 ms).
pub fn set_nodelay(connection: &dyn std::any::Any, _: &mut Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    use actix_web::rt::net::TcpStream;
    let tcp = connection
        .downcast_ref::<TcpStream>()
        .or_else(|| connection.downcast_ref::<TlsStream<TcpStream>>().map(|tls| tls.get_ref().0));
    if let Some(tcp) = tcp {
        let _ = tcp.set_nodelay(true);
    }
}
