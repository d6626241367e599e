//! SigV4: the Authorization header and presigned query parsers, the
//! canonical request, the region and signed-header rules, with any method,
//! path, query and headers: nothing may panic.
#![no_main]

mod common;

use jadfs_gateway::sigv4::{self, RequestParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = common::fields(data, 6);
    let mut headers = vec![("host".to_string(), f[3].clone())];
    for line in f[4].split('\n') {
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
    }
    if !f[5].is_empty() {
        headers.push(("authorization".into(), f[5].clone()));
    }
    let req = RequestParts { method: &f[0], raw_path: &f[1], raw_query: &f[2], headers };
    let _ = sigv4::access_key_of(&req);
    let _ = sigv4::parse_query(&f[2]);
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let _ = sigv4::verify(&req, now, "us-east-1", |_| Some("fuzz-secret".to_string()));
});
