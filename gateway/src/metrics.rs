//! The gateway's metrics (served by `jadfs_common::metrics`) and its access
//! log: each S3 request is counted by operation and status, timed until its
//! answer's last byte left (or the client went away), and logged in one
//! line, when its response body is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::HttpResponse;
use bytes::Bytes;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

const REQUESTS: &str = "jadfs_s3_requests_total";
const ERRORS: &str = "jadfs_s3_errors_total";
const DURATION: &str = "jadfs_s3_request_duration_seconds";
const RECEIVED: &str = "jadfs_s3_received_bytes_total";
const SENT: &str = "jadfs_s3_sent_bytes_total";
const IN_FLIGHT: &str = "jadfs_s3_requests_in_flight";

/// This process's totals of S3 requests and body bytes, for the console's
/// chart (Prometheus has its own copies, by operation).
static TOTALS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// (requests answered, bytes received, bytes sent) since the process began.
pub fn totals() -> (u64, u64, u64) {
    let [requests, received, sent] = &TOTALS;
    (requests.load(Ordering::Relaxed), received.load(Ordering::Relaxed), sent.load(Ordering::Relaxed))
}

pub fn describe() {
    describe_counter!(REQUESTS, "S3 requests answered, by operation and HTTP status.");
    describe_counter!(ERRORS, "S3 requests answered with an error, by operation and S3 error code.");
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time from a request's arrival until the last byte of its answer was sent, by operation."
    );
    describe_counter!(RECEIVED, Unit::Bytes, "Request body bytes received, by operation.");
    describe_counter!(SENT, Unit::Bytes, "Response body bytes sent, by operation.");
    describe_gauge!(IN_FLIGHT, "S3 requests in progress (their answers not yet sent whole).");
}

/// One S3 request from its arrival until its answer is sent: what the
/// metrics and the access-log line say of it.
pub struct Exchange {
    pub request_id: String,
    pub op: &'static str,
    pub bucket: Option<String>,
    /// The S3 error code it was answered with, if any.
    pub code: Option<&'static str>,
    /// Body bytes read so far (the body's reader adds to it).
    pub received: Arc<AtomicU64>,
    /// Whether to log the access line.
    pub log: bool,
    started: Instant,
}

impl Exchange {
    pub fn begin(request_id: String, log: bool) -> Exchange {
        gauge!(IN_FLIGHT).increment(1.0);
        Exchange {
            request_id,
            op: "unknown",
            bucket: None,
            code: None,
            received: Arc::default(),
            log,
            started: Instant::now(),
        }
    }

    /// The response, whose body now records the exchange when it is
    /// dropped: sent whole, or given up by the client. A body already in
    /// memory (XML, errors, small objects) is recorded now and stays bytes,
    /// which actix writes with the head in one go.
    pub fn finish(self, response: HttpResponse) -> HttpResponse {
        let status = response.status().as_u16();
        let record = Record { exchange: self, status };
        let (head, body) = response.into_parts();
        if matches!(body.size(), BodySize::None) {
            // No body at all (a HEAD's Content-Length is the object's).
            record.done(0, true);
            return head.set_body(body);
        }
        match body.try_into_bytes() {
            Ok(bytes) => {
                record.done(bytes.len() as u64, true);
                head.set_body(BoxBody::new(bytes))
            }
            Err(body) => head.set_body(BoxBody::new(Metered { body, sent: 0, record: Some(record) })),
        }
    }
}

struct Record {
    exchange: Exchange,
    status: u16,
}

impl Record {
    fn done(self, sent: u64, complete: bool) {
        let e = self.exchange;
        let received = e.received.load(Ordering::Relaxed);
        let elapsed = e.started.elapsed();
        gauge!(IN_FLIGHT).decrement(1.0);
        counter!(REQUESTS, "op" => e.op, "status" => self.status.to_string()).increment(1);
        if let Some(code) = e.code {
            counter!(ERRORS, "op" => e.op, "code" => code).increment(1);
        }
        histogram!(DURATION, "op" => e.op).record(elapsed);
        counter!(RECEIVED, "op" => e.op).increment(received);
        counter!(SENT, "op" => e.op).increment(sent);
        for (total, n) in TOTALS.iter().zip([1, received, sent]) {
            total.fetch_add(n, Ordering::Relaxed);
        }
        if e.log {
            tracing::info!(
                target: "jadfs::access",
                request_id = %e.request_id,
                op = e.op,
                bucket = e.bucket.as_deref().unwrap_or("-"),
                status = self.status,
                code = e.code.unwrap_or("-"),
                received,
                sent,
                complete,
                ms = elapsed.as_millis() as u64,
            );
        }
    }
}

/// A response body that counts what it sends and records its exchange
/// when it ends or is dropped.
struct Metered {
    body: BoxBody,
    sent: u64,
    record: Option<Record>,
}

impl MessageBody for Metered {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => self.sent += bytes.len() as u64,
            Poll::Ready(None) => {
                let sent = self.sent;
                if let Some(record) = self.record.take() {
                    record.done(sent, true);
                }
            }
            _ => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            // Dropped before its end: a HEAD, an empty body, or a client
            // that went away (`complete` tells them apart with the size).
            let complete = matches!(self.body.size(), BodySize::None | BodySize::Sized(0));
            record.done(self.sent, complete);
        }
    }
}
