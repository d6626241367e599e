//! What a request line says: bucket and key (path or virtual-host style),
//! the operation and its parameters, copy sources, ranges, HTTP dates,
//! ETag lists and browser-form policies.
#![no_main]

mod common;

use actix_web::http::Method;
use jadfs_gateway::fuzzing::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = common::fields(data, 6);
    if let Ok((bucket, key)) = resolve_target(&f[0], &f[1], Some("localhost")) {
        let query = jadfs_gateway::sigv4::parse_query(&f[2]);
        for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::HEAD] {
            let line = RequestLine { method: &method, bucket: bucket.clone(), key: key.clone(), query: &query, copy_source: Some(&f[3]) };
            if let Ok(endpoint) = Endpoint::parse(line) {
                let _ = (endpoint.name(), endpoint.permission());
            }
        }
    }
    let _ = CopySource::parse(&f[3]);
    for size in [0, 1, 100, u64::MAX] {
        if let Ok(Some((start, end))) = parse_range(&f[4], size) {
            assert!(start <= end && end < size, "{start}-{end} of {size}");
        }
    }
    let _ = parse_http_date(&f[4]);
    let etag = jadfs_common::ETag::of_md5(&[7; 16]);
    let _ = etag.matches(&f[5]);
    if let Ok(policy) = serde_json::from_str::<serde_json::Value>(&f[5]) {
        let fields = vec![("key".to_string(), f[0].clone()), ("content-type".to_string(), f[1].clone())];
        let _ = check_post_policy(&policy, &fields, "bucket");
    }
});
