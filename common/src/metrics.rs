//! Prometheus metrics: one recorder per process, whatever roles it runs,
//! and its text served on `/metrics` by every role behind one access check.
//! Libraries record through the `metrics` facade (a no-op until the binary
//! calls [`install`]); each role names its metrics in its own `metrics`
//! module, never at the call sites.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;

/// Upper bounds of the latency histograms (every metric named `…_seconds`
/// that is a histogram): from a cached metadata read to a slow 64 MiB chunk.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Samples of histograms wait in the recorder until they are folded into
/// their buckets: this often, whether or not anyone scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

struct Exposition {
    handle: PrometheusHandle,
    /// Scrapers must send `Authorization: Bearer <token>`; without one,
    /// only loopback peers may read.
    token: Option<String>,
}

static EXPOSITION: OnceLock<Exposition> = OnceLock::new();

/// Installs this process's recorder; a second call changes nothing.
pub fn install(token: Option<String>) {
    EXPOSITION.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; /metrics shows only this one's");
        }
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            })
            .expect("spawning the metrics upkeep thread");
        Exposition { handle, token: token.filter(|t| !t.is_empty()) }
    });
}

/// Who may read the metrics.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Allowed,
    /// 401: a token is set and the request does not carry it.
    NoToken,
    /// 403: no token is set and the peer is not on loopback.
    NotLoopback,
}

fn access(token: Option<&str>, authorization: Option<&[u8]>, peer: Option<IpAddr>) -> Access {
    match token {
        Some(token) => {
            let expected = format!("Bearer {token}");
            let given = authorization.unwrap_or_default();
            if bool::from(given.ct_eq(expected.as_bytes())) {
                Access::Allowed
            } else {
                Access::NoToken
            }
        }
        None if peer.is_some_and(|ip| ip.is_loopback()) => Access::Allowed,
        None => Access::NotLoopback,
    }
}

/// Answers `GET /metrics`: the text format to who may read it.
pub fn respond(req: &HttpRequest) -> HttpResponse {
    let Some(exposition) = EXPOSITION.get() else {
        return HttpResponse::NotFound().body("metrics are not recorded in this process\n");
    };
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match access(exposition.token.as_deref(), authorization, req.peer_addr().map(|a| a.ip())) {
        Access::Allowed => {
            HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(exposition.handle.render())
        }
        Access::NoToken => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .body("a bearer token is required (--metrics-token)\n"),
        Access::NotLoopback => {
            HttpResponse::Forbidden().body("metrics are served to loopback only, unless --metrics-token is set\n")
        }
    }
}

/// `GET /metrics` as an actix handler.
pub async fn scrape(req: HttpRequest) -> HttpResponse {
    respond(&req)
}

/// Whether a request to `path` is a scrape: unsigned, so that on the S3
/// port a signed `GET /metrics` stays ListObjects of a bucket named
/// `metrics`.
pub fn is_scrape(path: &str, query: &str, headers: &header::HeaderMap) -> bool {
    // Judged on the raw query: one with escapes (`X-Amz-Signatur%65`) could
    // be a presigned request in disguise, so it is left to S3.
    path == "/metrics"
        && !query.contains('%')
        && !query.to_ascii_lowercase().contains("x-amz-")
        && headers.get(header::AUTHORIZATION).is_none_or(|v| v.as_bytes().starts_with(b"Bearer "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_must_match_exactly_and_loopback_is_open_only_without_one() {
        let local: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let remote: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
        assert_eq!(access(None, None, local), Access::Allowed);
        assert_eq!(access(None, None, Some("::1".parse().unwrap())), Access::Allowed);
        assert_eq!(access(None, None, remote), Access::NotLoopback);
        assert_eq!(access(None, None, None), Access::NotLoopback);
        assert_eq!(access(Some("s3cret"), Some(b"Bearer s3cret"), remote), Access::Allowed);
        for wrong in [&b"Bearer s3cre"[..], b"Bearer s3cret ", b"bearer s3cret", b"s3cret", b""] {
            assert_eq!(access(Some("s3cret"), Some(wrong), local), Access::NoToken, "{wrong:?}");
        }
        // A token set means loopback needs it too.
        assert_eq!(access(Some("s3cret"), None, local), Access::NoToken);
    }

    #[test]
    fn only_an_unsigned_get_of_metrics_is_a_scrape() {
        let mut headers = header::HeaderMap::new();
        assert!(is_scrape("/metrics", "", &headers));
        assert!(!is_scrape("/metrics/", "", &headers));
        assert!(!is_scrape("/metricsx", "", &headers));
        assert!(!is_scrape("/metrics", "X-Amz-Signature=abc&X-Amz-Credential=x", &headers));
        assert!(!is_scrape("/metrics", "X-Amz-Signatur%65=abc", &headers));
        assert!(!is_scrape("/metrics", "x-amz-signature=abc", &headers));
        headers.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        assert!(is_scrape("/metrics", "", &headers));
        headers.insert(header::AUTHORIZATION, header::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"));
        assert!(!is_scrape("/metrics", "", &headers));
    }
}
