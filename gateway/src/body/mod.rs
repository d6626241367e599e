//! Request bodies as S3 clients send them: plain (with an optional SHA-256
//! to check), or aws-chunked, signed chunk by chunk or unsigned with
//! trailing checksums. The decoder hands out the object's bytes as they
//! arrive and verifies lengths, signatures and checksums as it goes; the
//! framing never reaches storage.
//!
//! A handler receives the body as a [`RequestBody`], which has no bytes to
//! give: they come out only through an [`ObjectBody`] (which checks them),
//! or, for a browser form, through the form's reader.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use jadfs_common::Checksum;
use sha2::{Digest, Sha256};

use crate::checksum::{Algorithm, Hasher};
use crate::error::{Code, S3Error};
use crate::sigv4::{ChunkSigner, PayloadMode};

type RawStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// A request's body, not yet read: the only way to its bytes is a decoder
/// that verifies them.
pub struct RequestBody {
    stream: RawStream,
    /// A body that sends nothing for this long fails with RequestTimeout.
    idle: Duration,
}

impl RequestBody {
    /// `received` counts the bytes as they arrive (for metrics).
    pub fn new(payload: web::Payload, idle: Duration, received: Arc<AtomicU64>) -> RequestBody {
        let counted = payload.inspect(move |piece| {
            if let Ok(bytes) = piece {
                received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
        });
        RequestBody { stream: Box::pin(counted), idle }
    }

    /// The body of a browser form upload, read by the form's parser: its
    /// fields carry the policy and signature that authenticate it, which
    /// are checked before any file byte is stored.
    pub fn into_form_reader(self) -> BodyReader {
        BodyReader::new(self)
    }

    /// A body that arrives in these pieces, then ends or fails (tests and fuzzing).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_pieces(pieces: Vec<Result<Bytes, PayloadError>>) -> RequestBody {
        RequestBody { stream: Box::pin(futures_util::stream::iter(pieces)), idle: Duration::from_secs(5) }
    }
}

/// Pieces handed to the caller are at most this large.
const MAX_PIECE: usize = 1 << 20;
/// A signed chunk is held in memory until its signature is checked.
const MAX_SIGNED_CHUNK: usize = 16 << 20;
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16;

/// Buffered access to the raw request body.
pub struct BodyReader {
    payload: RawStream,
    idle: Duration,
    buf: BytesMut,
    eof: bool,
}

impl BodyReader {
    fn new(body: RequestBody) -> BodyReader {
        BodyReader { payload: body.stream, idle: body.idle, buf: BytesMut::new(), eof: false }
    }

    /// Reads more of the body into the buffer; false once it has ended.
    async fn fill(&mut self) -> Result<bool, S3Error> {
        if self.eof {
            return Ok(false);
        }
        let next = tokio::time::timeout(self.idle, self.payload.next()).await.map_err(|_| {
            tracing::debug!(idle = ?self.idle, "request body stalled");
            S3Error::new(Code::RequestTimeout)
        })?;
        match next {
            Some(Ok(bytes)) => {
                self.buf.extend_from_slice(&bytes);
                Ok(true)
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body failed");
                Err(S3Error::new(Code::IncompleteBody))
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Up to `max` bytes, waiting for some if none are buffered; None at the end.
    async fn take(&mut self, max: usize) -> Result<Option<Bytes>, S3Error> {
        if self.buf.is_empty() && !self.fill().await? {
            return Ok(None);
        }
        let n = self.buf.len().min(max);
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    async fn read_exact(&mut self, n: usize) -> Result<Bytes, S3Error> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(S3Error::new(Code::IncompleteBody));
            }
        }
        Ok(self.buf.split_to(n).freeze())
    }

    /// The bytes before the next `delimiter`, in pieces of at most `max`;
    /// None once the delimiter itself has been consumed.
    pub async fn read_until(&mut self, delimiter: &[u8], max: usize) -> Result<Option<Bytes>, S3Error> {
        loop {
            if let Some(pos) = self.buf.windows(delimiter.len()).position(|w| w == delimiter) {
                if pos == 0 {
                    let _ = self.buf.split_to(delimiter.len());
                    return Ok(None);
                }
                return Ok(Some(self.buf.split_to(pos.min(max)).freeze()));
            }
            // Bytes that cannot begin the delimiter are safe to hand out.
            let safe = self.buf.len().saturating_sub(delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe.min(max)).freeze()));
            }
            if !self.fill().await? {
                return Err(S3Error::new(Code::IncompleteBody));
            }
        }
    }

    /// Reads exactly `expected`, failing on anything else.
    pub async fn expect(&mut self, expected: &[u8]) -> Result<bool, S3Error> {
        while self.buf.len() < expected.len() {
            if !self.fill().await? {
                return Ok(false);
            }
        }
        if &self.buf[..expected.len()] == expected {
            let _ = self.buf.split_to(expected.len());
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A line without its CRLF; None if the body ended cleanly before it.
    pub async fn read_line(&mut self) -> Result<Option<String>, S3Error> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(pos + 2);
                return String::from_utf8(line[..pos].to_vec())
                    .map(Some)
                    .map_err(|_| S3Error::new(Code::InvalidRequest).with_message("Malformed aws-chunked body"));
            }
            if self.buf.len() > MAX_LINE {
                return Err(S3Error::new(Code::InvalidRequest).with_message("Malformed aws-chunked body"));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() { Ok(None) } else { Err(S3Error::new(Code::IncompleteBody)) };
            }
        }
    }
}

enum Framing {
    Plain { remaining: Option<u64> },
    Chunked { signer: Option<ChunkSigner>, chunk_left: u64, finished: bool },
}

/// What the client declared about the body's checksum.
struct ChecksumCheck {
    algorithm: Algorithm,
    hasher: Hasher,
    /// From a header; a trailer supplies it at the end otherwise.
    expected: Option<String>,
}

/// An object body being decoded.
pub struct ObjectBody {
    reader: BodyReader,
    framing: Framing,
    checksum: Option<ChecksumCheck>,
    payload_sha256: Option<(Sha256, String)>,
    decoded_length: Option<u64>,
    received: u64,
    trailers: Vec<(String, String)>,
    verified_checksum: Option<Checksum>,
    done: bool,
}

/// The request headers the decoder needs.
#[derive(Clone)]
pub struct BodyHeaders {
    pub content_length: Option<u64>,
    pub decoded_content_length: Option<u64>,
    /// `x-amz-checksum-*` headers present, with their values.
    pub checksum_header: Option<(Algorithm, String)>,
    /// The algorithm named by `x-amz-trailer`, if any.
    pub trailer_checksum: Option<Algorithm>,
}

impl ObjectBody {
    pub fn new(
        body: RequestBody,
        mode: &PayloadMode,
        chunk_signer: Option<ChunkSigner>,
        headers: &BodyHeaders,
    ) -> Result<ObjectBody, S3Error> {
        // The signed payload mode says whether the body is aws-chunked;
        // Content-Encoding may name aws-chunked over a plain body.
        let chunked = matches!(mode, PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer);
        let framing = if chunked {
            Framing::Chunked { signer: chunk_signer, chunk_left: 0, finished: false }
        } else {
            Framing::Plain { remaining: headers.content_length }
        };
        let decoded_length = if chunked { headers.decoded_content_length } else { headers.content_length };
        let checksum = match (&headers.checksum_header, headers.trailer_checksum) {
            (Some((algorithm, value)), _) => {
                Some(ChecksumCheck { algorithm: *algorithm, hasher: algorithm.hasher(), expected: Some(value.clone()) })
            }
            (None, Some(algorithm)) if chunked => {
                Some(ChecksumCheck { algorithm, hasher: algorithm.hasher(), expected: None })
            }
            (None, Some(_)) => {
                return Err(
                    S3Error::new(Code::InvalidRequest).with_message("x-amz-trailer requires an aws-chunked body")
                );
            }
            (None, None) => None,
        };
        let payload_sha256 = match mode {
            PayloadMode::Sha256(hex) => Some((Sha256::new(), hex.clone())),
            _ => None,
        };
        Ok(ObjectBody {
            reader: BodyReader::new(body),
            framing,
            checksum,
            payload_sha256,
            decoded_length,
            received: 0,
            trailers: Vec::new(),
            verified_checksum: None,
            done: false,
        })
    }

    /// The declared decoded length, when the client sent one.
    pub fn declared_length(&self) -> Option<u64> {
        self.decoded_length
    }

    /// The flexible checksum algorithm the client declared (header or trailer).
    pub fn declared_checksum(&self) -> Option<Algorithm> {
        self.checksum.as_ref().map(|c| c.algorithm).or(self.verified_checksum.as_ref().map(|c| c.algorithm))
    }

    /// The flexible checksum the client sent and we verified, once the body is read.
    pub fn verified_checksum(&self) -> Option<&Checksum> {
        self.verified_checksum.as_ref()
    }

    /// The next piece of the object, or None once the whole body was read
    /// and verified.
    pub async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        if self.done {
            return Ok(None);
        }
        let piece = match &mut self.framing {
            Framing::Plain { remaining } => next_plain(&mut self.reader, remaining).await?,
            Framing::Chunked { signer, chunk_left, finished } => {
                next_chunked(&mut self.reader, signer, chunk_left, finished, &mut self.trailers).await?
            }
        };
        match piece {
            Some(bytes) => {
                self.received += bytes.len() as u64;
                if self.decoded_length.is_some_and(|n| self.received > n) {
                    return Err(
                        S3Error::new(Code::IncompleteBody).with_message("The body is longer than its declared length")
                    );
                }
                if let Some(check) = &mut self.checksum {
                    check.hasher.update(&bytes);
                }
                if let Some((hasher, _)) = &mut self.payload_sha256 {
                    hasher.update(&bytes);
                }
                Ok(Some(bytes))
            }
            None => {
                self.finish()?;
                Ok(None)
            }
        }
    }

    fn finish(&mut self) -> Result<(), S3Error> {
        self.done = true;
        if self.decoded_length.is_some_and(|n| n != self.received) {
            return Err(S3Error::new(Code::IncompleteBody));
        }
        if let Some((hasher, expected)) = self.payload_sha256.take() {
            if hex::encode(hasher.finalize()) != *expected {
                return Err(S3Error::new(Code::XAmzContentSHA256Mismatch));
            }
        }
        if let Some(check) = self.checksum.take() {
            let header = check.algorithm.header();
            let expected = check
                .expected
                .or_else(|| self.trailers.iter().find(|(n, _)| *n == header).map(|(_, v)| v.clone()))
                .ok_or_else(|| {
                    S3Error::new(Code::InvalidRequest).with_message(format!("The trailer {header} is missing"))
                })?;
            let actual = check.hasher.finish();
            if actual != expected {
                return Err(S3Error::new(Code::BadDigest).with_message(format!(
                    "The {} you specified did not match the calculated checksum.",
                    check.algorithm.name().to_uppercase()
                )));
            }
            self.verified_checksum = Some(Checksum::full(check.algorithm, actual));
        }
        Ok(())
    }
}

async fn next_plain(reader: &mut BodyReader, remaining: &mut Option<u64>) -> Result<Option<Bytes>, S3Error> {
    let want = match *remaining {
        Some(0) => return Ok(None),
        Some(n) => n.min(MAX_PIECE as u64) as usize,
        None => MAX_PIECE,
    };
    match reader.take(want).await? {
        Some(bytes) => {
            if let Some(n) = remaining {
                *n -= bytes.len() as u64;
            }
            Ok(Some(bytes))
        }
        None if remaining.is_none() => Ok(None),
        None => Err(S3Error::new(Code::IncompleteBody)),
    }
}

fn malformed() -> S3Error {
    S3Error::new(Code::InvalidRequest).with_message("Malformed aws-chunked body")
}

async fn next_chunked(
    reader: &mut BodyReader,
    signer: &mut Option<ChunkSigner>,
    chunk_left: &mut u64,
    finished: &mut bool,
    trailers: &mut Vec<(String, String)>,
) -> Result<Option<Bytes>, S3Error> {
    loop {
        if *finished {
            return Ok(None);
        }
        if *chunk_left > 0 {
            let bytes = reader.take((*chunk_left).min(MAX_PIECE as u64) as usize).await?.ok_or(Code::IncompleteBody)?;
            *chunk_left -= bytes.len() as u64;
            if *chunk_left == 0 {
                expect_crlf(reader).await?;
            }
            return Ok(Some(bytes));
        }
        let header = reader.read_line().await?.ok_or(Code::IncompleteBody)?;
        let (size_hex, extension) = header.split_once(';').unwrap_or((header.as_str(), ""));
        let size = u64::from_str_radix(size_hex.trim(), 16).map_err(|_| malformed())?;
        let signature = extension.trim().strip_prefix("chunk-signature=");
        if let Some(signer) = signer {
            let signature = signature.ok_or_else(|| {
                S3Error::new(Code::SignatureDoesNotMatch).with_message("A chunk signature is missing.")
            })?;
            if size as usize > MAX_SIGNED_CHUNK {
                return Err(malformed());
            }
            let data = reader.read_exact(size as usize).await?;
            signer.verify_chunk(&data, signature)?;
            if size == 0 {
                read_trailers(reader, Some(signer), trailers).await?;
                *finished = true;
                return Ok(None);
            }
            expect_crlf(reader).await?;
            return Ok(Some(data));
        }
        if size == 0 {
            read_trailers(reader, None, trailers).await?;
            *finished = true;
            return Ok(None);
        }
        *chunk_left = size;
    }
}

async fn expect_crlf(reader: &mut BodyReader) -> Result<(), S3Error> {
    match reader.read_line().await? {
        Some(line) if line.is_empty() => Ok(()),
        _ => Err(malformed()),
    }
}

/// Reads `name:value` lines up to the empty line ending the body, checking
/// `x-amz-trailer-signature` when the body is signed.
async fn read_trailers(
    reader: &mut BodyReader,
    signer: Option<&mut ChunkSigner>,
    trailers: &mut Vec<(String, String)>,
) -> Result<(), S3Error> {
    let mut signature = None;
    while let Some(line) = reader.read_line().await? {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(malformed)?;
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-trailer-signature" {
            signature = Some(value.trim().to_string());
        } else {
            if trailers.len() == MAX_TRAILERS {
                return Err(malformed());
            }
            trailers.push((name, value.trim().to_string()));
        }
    }
    if let Some(signer) = signer {
        if !trailers.is_empty() || signature.is_some() {
            let canonical: String = trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let signature = signature.ok_or_else(|| {
                S3Error::new(Code::SignatureDoesNotMatch).with_message("The trailer signature is missing.")
            })?;
            signer.verify_trailer(&canonical, &signature)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
