//! The body decoder: any bytes, cut anywhere, as a plain body with a
//! signed hash, as signed aws-chunked (with and without trailers) and as
//! unsigned aws-chunked with a trailer. Nothing may panic; what decodes is
//! never more than the declared length.
#![no_main]

mod common;

use std::sync::OnceLock;

use jadfs_common::checksum::Algorithm;
use jadfs_gateway::fuzzing::{test_signer, BodyHeaders, ObjectBody, RequestBody};
use jadfs_gateway::sigv4::PayloadMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let pieces = common::pieces(rest);
    let declared = (rest.len() as u64).saturating_sub(mode as u64);
    let (mode, signer, trailer) = match mode % 4 {
        0 => (PayloadMode::Sha256("00".repeat(32)), None, None),
        1 => (PayloadMode::StreamingSigned { trailer: false }, Some(test_signer::pair().1), None),
        2 => (PayloadMode::StreamingSigned { trailer: true }, Some(test_signer::pair().1), Some(Algorithm::Crc32c)),
        _ => (PayloadMode::StreamingUnsignedTrailer, None, Some(Algorithm::Crc32)),
    };
    let headers = BodyHeaders {
        content_length: Some(rest.len() as u64),
        decoded_content_length: Some(declared),
        checksum_header: None,
        trailer_checksum: trailer,
    };
    // A plain body is framed by Content-Length; aws-chunked declares its decoded length.
    let bound = if matches!(mode, PayloadMode::Sha256(_)) { rest.len() as u64 } else { declared };
    let body = RequestBody::from_pieces(pieces.into_iter().map(Ok).collect());
    let Ok(mut body) = ObjectBody::new(body, &mode, signer, &headers) else { return };
    let decode = async {
        let mut total = 0u64;
        while let Ok(Some(piece)) = body.next().await {
            total += piece.len() as u64;
            assert!(total <= bound, "decoded {total} bytes of a body declared {bound}");
        }
    };
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap());
    runtime.block_on(decode);
});
