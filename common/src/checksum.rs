//! S3's flexible checksums (`x-amz-checksum-*`): CRC32, CRC32C, CRC64NVME,
//! SHA-1 and SHA-256, as base64 of the big-endian digest.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] =
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

    /// `crc32`, `crc32c`, … as in `x-amz-checksum-crc32`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name())
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    pub fn from_header(header: &str) -> Option<Algorithm> {
        header.strip_prefix("x-amz-checksum-").and_then(Algorithm::from_name)
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }
}

/// The checksum of a multipart object made of parts with `part_checksums`
/// (base64), S3's composite form: the checksum of the parts' binary
/// checksums, then `-N`. None if a part lacks one, or for CRC64NVME, which
/// S3 only computes over the full object.
pub fn composite(algorithm: Algorithm, part_checksums: &[Option<String>]) -> Option<String> {
    use base64::Engine;
    if algorithm == Algorithm::Crc64Nvme || part_checksums.is_empty() {
        return None;
    }
    let mut hasher = algorithm.hasher();
    for checksum in part_checksums {
        let raw = base64::engine::general_purpose::STANDARD.decode(checksum.as_deref()?).ok()?;
        hasher.update(&raw);
    }
    Some(format!("{}-{}", hasher.finish(), part_checksums.len()))
}

pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Hasher::Crc64Nvme(h) => h.write(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The checksum as S3 prints it: base64 of the big-endian digest.
    pub fn finish(self) -> String {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        match self {
            Hasher::Crc32(h) => b64(&h.finalize().to_be_bytes()),
            Hasher::Crc32c(crc) => b64(&crc.to_be_bytes()),
            Hasher::Crc64Nvme(h) => b64(&h.sum64().to_be_bytes()),
            Hasher::Sha1(h) => b64(&h.finalize()),
            Hasher::Sha256(h) => b64(&h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Check values of each algorithm over "123456789".
        let expect = [
            (Algorithm::Crc32, 0xCBF43926u64.to_be_bytes()[4..].to_vec()),
            (Algorithm::Crc32c, 0xE3069283u64.to_be_bytes()[4..].to_vec()),
            (Algorithm::Crc64Nvme, 0xAE8B14860A799888u64.to_be_bytes().to_vec()),
        ];
        for (algorithm, digest) in expect {
            let mut h = algorithm.hasher();
            h.update(b"12345");
            h.update(b"6789");
            assert_eq!(h.finish(), base64::engine::general_purpose::STANDARD.encode(digest), "{algorithm:?}");
        }
        assert_eq!(Algorithm::from_header("x-amz-checksum-crc64nvme"), Some(Algorithm::Crc64Nvme));
        assert_eq!(Algorithm::from_name("SHA256"), Some(Algorithm::Sha256));
    }
}
