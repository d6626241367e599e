//! S3's flexible checksums (`x-amz-checksum-*`): CRC32, CRC32C, CRC64NVME,
//! SHA-1 and SHA-256, as base64 of the big-endian digest.

use base64::Engine;
use serde::{Deserialize, Serialize};
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

    /// `ChecksumCRC32`, `ChecksumSHA256`, … as S3's XML names them.
    pub fn xml_element(self) -> String {
        format!("Checksum{}", self.name().to_uppercase())
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
pub fn composite(algorithm: Algorithm, part_checksums: &[Option<String>]) -> Option<Checksum> {
    if algorithm == Algorithm::Crc64Nvme || part_checksums.is_empty() {
        return None;
    }
    let mut hasher = algorithm.hasher();
    for checksum in part_checksums {
        let raw = base64::engine::general_purpose::STANDARD.decode(checksum.as_deref()?).ok()?;
        hasher.update(&raw);
    }
    let value = format!("{}-{}", hasher.finish(), part_checksums.len());
    Some(Checksum { algorithm, value, kind: ChecksumType::Composite })
}

/// The CRC of a whole object from its parts' CRCs (base64) and sizes,
/// without reading a byte: S3's full-object multipart checksum. None for
/// SHA algorithms, which cannot be combined, or if a part lacks one.
pub fn full_object(algorithm: Algorithm, parts: &[(Option<String>, u64)]) -> Option<Checksum> {
    let (poly, bits) = match algorithm {
        Algorithm::Crc32 => (0xEDB8_8320u64, 32),
        Algorithm::Crc32c => (0x82F6_3B78u64, 32),
        Algorithm::Crc64Nvme => (0x9A6C_9329_AC4B_C9B5u64, 64),
        Algorithm::Sha1 | Algorithm::Sha256 => return None,
    };
    let mut combined: Option<u64> = None;
    for (checksum, size) in parts {
        let raw = base64::engine::general_purpose::STANDARD.decode(checksum.as_deref()?).ok()?;
        let crc = raw.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        combined = Some(match combined {
            None => crc,
            Some(before) => crc_combine(before, crc, *size, poly, bits),
        });
    }
    let crc = combined?;
    let bytes = crc.to_be_bytes();
    Some(Checksum::full(algorithm, base64::engine::general_purpose::STANDARD.encode(&bytes[8 - bits / 8..])))
}

/// CRC(A ‖ B) from CRC(A), CRC(B) and len(B), for a reflected CRC with
/// all-ones initial value and final xor: zlib's method, which applies the
/// operator "append len(B) zero bytes" to CRC(A) by repeated squaring of a
/// GF(2) matrix.
fn crc_combine(crc1: u64, crc2: u64, len2: u64, poly: u64, bits: usize) -> u64 {
    fn times(matrix: &[u64], mut vector: u64) -> u64 {
        let mut sum = 0;
        let mut i = 0;
        while vector != 0 {
            if vector & 1 != 0 {
                sum ^= matrix[i];
            }
            vector >>= 1;
            i += 1;
        }
        sum
    }
    fn square(matrix: &[u64]) -> Vec<u64> {
        matrix.iter().map(|&row| times(matrix, row)).collect()
    }
    if len2 == 0 {
        return crc1;
    }
    // The operator for one zero bit, then two, then four.
    let mut odd = vec![0u64; bits];
    odd[0] = poly;
    for (n, row) in odd.iter_mut().enumerate().skip(1) {
        *row = 1 << (n - 1);
    }
    let mut even = square(&odd);
    odd = square(&even);
    let (mut crc1, mut len2) = (crc1, len2);
    loop {
        even = square(&odd); // one more zero byte's worth, doubled
        if len2 & 1 != 0 {
            crc1 = times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        odd = square(&even);
        if len2 & 1 != 0 {
            crc1 = times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

impl Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        let name = String::deserialize(d)?;
        Algorithm::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown checksum {name:?}")))
    }
}

/// What a checksum covers: every byte of the object, or (for a multipart
/// object) the parts' checksums, S3's "composite" form ending in `-N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    /// `FULL_OBJECT` or `COMPOSITE`, as in `x-amz-checksum-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }
}

/// A verified flexible checksum of an object or a part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Base64, as S3 prints it; a composite ends in `-N`.
    pub value: String,
    #[serde(rename = "type")]
    pub kind: ChecksumType,
}

impl Checksum {
    /// The checksum of every byte.
    pub fn full(algorithm: Algorithm, value: String) -> Checksum {
        Checksum { algorithm, value, kind: ChecksumType::FullObject }
    }

    /// Whether the checksum a client expects for a multipart object is this
    /// one; a composite may be given without its `-N`.
    pub fn is(&self, expected: &str) -> bool {
        expected == self.value
            || (self.kind == ChecksumType::Composite
                && self.value.rsplit_once('-').is_some_and(|(value, _)| value == expected))
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Checksum, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Typed {
                algorithm: Algorithm,
                value: String,
                #[serde(rename = "type")]
                kind: ChecksumType,
            },
            /// Data version 1 kept `(algorithm, value)`; only a composite
            /// ends in `-N`, so the suffix tells the type of those.
            Pair(Algorithm, String),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Typed { algorithm, value, kind } => Checksum { algorithm, value, kind },
            Stored::Pair(algorithm, value) => {
                let composite = value.rsplit_once('-').is_some_and(|(_, n)| n.parse::<u32>().is_ok());
                let kind = if composite { ChecksumType::Composite } else { ChecksumType::FullObject };
                Checksum { algorithm, value, kind }
            }
        })
    }
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
    }

    #[test]
    fn full_object_crcs_combine_part_crcs() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let whole = {
                let mut h = algorithm.hasher();
                h.update(&data);
                h.finish()
            };
            for cuts in [vec![0, 100_000], vec![0, 1, 100_000], vec![0, 5000, 5001, 77_777, 100_000]] {
                let parts: Vec<(Option<String>, u64)> = cuts
                    .windows(2)
                    .map(|w| {
                        let mut h = algorithm.hasher();
                        h.update(&data[w[0]..w[1]]);
                        (Some(h.finish()), (w[1] - w[0]) as u64)
                    })
                    .collect();
                assert_eq!(full_object(algorithm, &parts), Some(Checksum::full(algorithm, whole.clone())), "{cuts:?}");
            }
        }
        assert_eq!(full_object(Algorithm::Sha256, &[(Some("AAAA".into()), 1)]), None);
        assert_eq!(Algorithm::from_name("SHA256"), Some(Algorithm::Sha256));
    }

    #[test]
    fn checksums_read_both_stored_forms() {
        let typed = Checksum { algorithm: Algorithm::Crc32, value: "AAAA-2".into(), kind: ChecksumType::Composite };
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(json, r#"{"algorithm":"crc32","value":"AAAA-2","type":"COMPOSITE"}"#);
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), typed);
        assert_eq!(serde_json::from_str::<Checksum>(r#"["crc32","AAAA-2"]"#).unwrap(), typed);
        let full = serde_json::from_str::<Checksum>(r#"["sha256","q83v"]"#).unwrap();
        assert_eq!(full, Checksum::full(Algorithm::Sha256, "q83v".into()));
        assert!(typed.is("AAAA") && typed.is("AAAA-2") && !full.is("q8"));
    }
}
