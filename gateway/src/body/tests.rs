//! The aws-chunked decoder against every framing, split at every boundary,
//! cut short, tampered with, and with lying lengths.

use super::*;
use crate::sigv4::test_signer;

/// Three aws-chunked chunks: 100, 100 and 57 bytes.
fn data() -> Vec<u8> {
    (0..257u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn checksum_of(algorithm: Algorithm, data: &[u8]) -> String {
    let mut hasher = algorithm.hasher();
    hasher.update(data);
    hasher.finish()
}

/// One way a client frames a body.
#[derive(Clone)]
struct Framing {
    name: &'static str,
    mode: PayloadMode,
    signer: Option<ChunkSigner>,
    headers: BodyHeaders,
    encoded: Vec<u8>,
    /// The checksum the decoder must report as verified.
    checksum: Option<Checksum>,
    /// Bytes at the very end (the closing CRLF of aws-chunked) whose
    /// loss leaves every object byte and check in place.
    closing: usize,
}

fn headers(content_length: usize, decoded: Option<usize>) -> BodyHeaders {
    BodyHeaders {
        content_length: Some(content_length as u64),
        decoded_content_length: decoded.map(|n| n as u64),
        checksum_header: None,
        trailer_checksum: None,
    }
}

/// `data` as a plain body.
fn plain(name: &'static str, mode: PayloadMode, headers: BodyHeaders, checksum: Option<Checksum>) -> Framing {
    Framing { name, mode, signer: None, headers, encoded: data(), checksum, closing: 0 }
}

/// aws-chunked framing of `data`, signed when `signer` is given, with
/// trailing headers when `trailer` is.
fn chunked(data: &[u8], signer: Option<&mut ChunkSigner>, trailer: Option<(Algorithm, String)>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut signer = signer;
    for chunk in data.chunks(100).chain([&[][..]]) {
        out.extend(format!("{:x}", chunk.len()).as_bytes());
        if let Some(signer) = signer.as_deref_mut() {
            out.extend(format!(";chunk-signature={}", test_signer::sign_chunk(signer, chunk)).as_bytes());
        }
        out.extend(b"\r\n");
        if !chunk.is_empty() {
            out.extend(chunk);
            out.extend(b"\r\n");
        }
    }
    if let Some((algorithm, value)) = trailer {
        let line = format!("{}:{value}", algorithm.header());
        out.extend(line.as_bytes());
        out.extend(b"\r\n");
        if let Some(signer) = signer {
            let signature = test_signer::sign_trailer(signer, &format!("{line}\n"));
            out.extend(format!("x-amz-trailer-signature:{signature}\r\n").as_bytes());
        }
    }
    out.extend(b"\r\n");
    out
}

fn framings() -> Vec<Framing> {
    let data = data();
    let len = data.len();
    let sha256 = hex::encode(Sha256::digest(&data));
    let crc32 = checksum_of(Algorithm::Crc32, &data);
    let crc32c = checksum_of(Algorithm::Crc32c, &data);
    let mut plain_crc = headers(len, None);
    plain_crc.checksum_header = Some((Algorithm::Crc32, crc32.clone()));

    let (mut client, verifier) = test_signer::pair();
    let signed = chunked(&data, Some(&mut client), None);
    let (mut client, trailer_verifier) = test_signer::pair();
    let signed_trailer = chunked(&data, Some(&mut client), Some((Algorithm::Crc32c, crc32c.clone())));
    let unsigned_trailer = chunked(&data, None, Some((Algorithm::Crc32, crc32.clone())));
    let trailer_headers = |encoded: &[u8], algorithm| {
        let mut h = headers(encoded.len(), Some(len));
        h.trailer_checksum = Some(algorithm);
        h
    };
    vec![
        plain("plain", PayloadMode::Unsigned, headers(len, None), None),
        plain("plain, signed SHA-256", PayloadMode::Sha256(sha256), headers(len, None), None),
        plain(
            "plain, CRC32 header",
            PayloadMode::Unsigned,
            plain_crc,
            Some(Checksum::full(Algorithm::Crc32, crc32.clone())),
        ),
        Framing {
            name: "signed chunks",
            mode: PayloadMode::StreamingSigned { trailer: false },
            signer: Some(verifier),
            headers: headers(signed.len(), Some(len)),
            encoded: signed,
            checksum: None,
            closing: 2,
        },
        Framing {
            name: "signed chunks, signed CRC32C trailer",
            mode: PayloadMode::StreamingSigned { trailer: true },
            signer: Some(trailer_verifier),
            headers: trailer_headers(&signed_trailer, Algorithm::Crc32c),
            encoded: signed_trailer,
            checksum: Some(Checksum::full(Algorithm::Crc32c, crc32c)),
            closing: 2,
        },
        Framing {
            name: "unsigned chunks, CRC32 trailer",
            mode: PayloadMode::StreamingUnsignedTrailer,
            signer: None,
            headers: trailer_headers(&unsigned_trailer, Algorithm::Crc32),
            encoded: unsigned_trailer,
            checksum: Some(Checksum::full(Algorithm::Crc32, crc32)),
            closing: 2,
        },
    ]
}

/// Decodes `pieces` as `framing` says, to the end.
async fn decode(framing: &Framing, pieces: Vec<Bytes>) -> Result<(Vec<u8>, Option<Checksum>), S3Error> {
    let body = RequestBody::from_pieces(pieces.into_iter().map(Ok).collect());
    let mut body = ObjectBody::new(body, &framing.mode, framing.signer.clone(), &framing.headers)?;
    let mut out = Vec::new();
    while let Some(piece) = body.next().await? {
        out.extend_from_slice(&piece);
    }
    Ok((out, body.verified_checksum().cloned()))
}

fn split_at(encoded: &[u8], at: usize) -> Vec<Bytes> {
    vec![Bytes::copy_from_slice(&encoded[..at]), Bytes::copy_from_slice(&encoded[at..])]
}

#[tokio::test]
async fn every_framing_decodes_whatever_the_pieces() {
    for framing in framings() {
        let encoded = &framing.encoded;
        let mut splits: Vec<Vec<Bytes>> = (0..=encoded.len()).map(|at| split_at(encoded, at)).collect();
        for size in [1, 7, 100, 4096] {
            splits.push(encoded.chunks(size).map(Bytes::copy_from_slice).collect());
        }
        for pieces in splits {
            let sizes: Vec<usize> = pieces.iter().map(Bytes::len).collect();
            let (bytes, checksum) = decode(&framing, pieces).await.unwrap_or_else(|e| {
                panic!("{}: pieces {sizes:?}: {e:?}", framing.name);
            });
            assert_eq!(bytes, data(), "{}: pieces {sizes:?}", framing.name);
            assert_eq!(checksum, framing.checksum, "{}", framing.name);
        }
    }
}

#[tokio::test]
async fn a_body_cut_short_never_decodes() {
    for framing in framings() {
        let encoded = &framing.encoded;
        // The declared lengths stay those of the whole body.
        for cut in 0..encoded.len() {
            let result = decode(&framing, vec![Bytes::copy_from_slice(&encoded[..cut])]).await;
            if cut < encoded.len() - framing.closing {
                assert!(result.is_err(), "{}: cut at {cut} of {} decoded", framing.name, encoded.len());
            } else if let Ok((bytes, _)) = result {
                assert_eq!(bytes, data(), "{}: only the closing CRLF may go missing", framing.name);
            }
        }
        // A body that fails in the middle is an error too.
        let body = RequestBody::from_pieces(vec![
            Ok(Bytes::copy_from_slice(&encoded[..encoded.len() / 2])),
            Err(PayloadError::Incomplete(None)),
        ]);
        let mut body = ObjectBody::new(body, &framing.mode, framing.signer.clone(), &framing.headers).unwrap();
        let mut failed = false;
        while !failed {
            match body.next().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{}: a failed body ended cleanly", framing.name),
                Err(e) => failed = e.code == Code::IncompleteBody,
            }
        }
    }
}

/// `encoded` with the first occurrence of `from` replaced by `to`.
fn replaced(encoded: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = encoded.windows(from.len()).position(|w| w == from).expect("present");
    [&encoded[..at], to, &encoded[at + from.len()..]].concat()
}

#[tokio::test]
async fn a_changed_byte_signature_or_trailer_is_refused() {
    let data = data();
    for framing in framings() {
        // One object byte changed in transit.
        let mut tampered = framing.clone();
        let at = tampered.encoded.windows(3).position(|w| w == &data[150..153]).expect("data is framed as is");
        tampered.encoded[at] ^= 0x01;
        let expected = match framing.name {
            "plain" => None,
            "plain, signed SHA-256" => Some(Code::XAmzContentSHA256Mismatch),
            "plain, CRC32 header" | "unsigned chunks, CRC32 trailer" => Some(Code::BadDigest),
            _ => Some(Code::SignatureDoesNotMatch),
        };
        let result = decode(&tampered, vec![Bytes::from(tampered.encoded.clone())]).await;
        assert_eq!(result.err().map(|e| e.code), expected, "{}", framing.name);
    }
    let all = framings();
    let (signed, signed_trailer, unsigned_trailer) = (&all[3], &all[4], &all[5]);

    // A chunk signature changed, or left out.
    let signature = b"chunk-signature=";
    let at = signed.encoded.windows(signature.len()).position(|w| w == signature).unwrap() + signature.len();
    let mut bad = signed.clone();
    bad.encoded[at] = if bad.encoded[at] == b'0' { b'1' } else { b'0' };
    let result = decode(&bad, vec![Bytes::from(bad.encoded.clone())]).await;
    assert_eq!(result.unwrap_err().code, Code::SignatureDoesNotMatch);
    let mut unsigned = signed.clone();
    let end = unsigned.encoded.windows(2).position(|w| w == b"\r\n").unwrap();
    unsigned.encoded = [&b"64"[..], &signed.encoded[end..]].concat();
    let result = decode(&unsigned, vec![Bytes::from(unsigned.encoded.clone())]).await;
    assert_eq!(result.unwrap_err().code, Code::SignatureDoesNotMatch);

    // A signed trailer's value changed (a valid CRC of other bytes).
    let crc32c = checksum_of(Algorithm::Crc32c, &data);
    let other = checksum_of(Algorithm::Crc32c, b"other bytes");
    let mut forged = signed_trailer.clone();
    forged.encoded = replaced(&forged.encoded, crc32c.as_bytes(), other.as_bytes());
    let result = decode(&forged, vec![Bytes::from(forged.encoded.clone())]).await;
    assert_eq!(result.unwrap_err().code, Code::SignatureDoesNotMatch);

    // An unsigned trailer that is missing, or names another algorithm.
    let crc32 = checksum_of(Algorithm::Crc32, &data);
    let mut missing = unsigned_trailer.clone();
    missing.encoded = replaced(&missing.encoded, format!("x-amz-checksum-crc32:{crc32}\r\n").as_bytes(), b"");
    let result = decode(&missing, vec![Bytes::from(missing.encoded.clone())]).await;
    assert_eq!(result.unwrap_err().code, Code::InvalidRequest);
}

#[tokio::test]
async fn a_declared_length_that_lies_is_refused() {
    for framing in framings() {
        let declared = framing.headers.decoded_content_length.or(framing.headers.content_length).unwrap();
        // A plain body ends where Content-Length says (HTTP frames it):
        // it can only be shorter than declared.
        let lies = if framing.headers.decoded_content_length.is_some() {
            vec![declared - 1, declared + 1]
        } else {
            vec![declared + 1]
        };
        for lie in lies {
            let mut lying = framing.clone();
            if framing.headers.decoded_content_length.is_some() {
                lying.headers.decoded_content_length = Some(lie);
            } else {
                lying.headers.content_length = Some(lie);
            }
            let result = decode(&lying, vec![Bytes::from(lying.encoded.clone())]).await;
            assert_eq!(result.err().map(|e| e.code), Some(Code::IncompleteBody), "{}: {lie}", framing.name);
        }
    }
}
