// Shared by the targets: cut the fuzzer's bytes into fields (each target uses some).
#![allow(dead_code)]

/// Splits `data` at 0xff bytes into at most `n` UTF-8 (lossy) fields.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data.splitn(n, |&b| b == 0xff).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    out.resize(n, String::new());
    out
}

/// Cuts `data` into pieces whose lengths the first byte chooses.
pub fn pieces(data: &[u8]) -> Vec<bytes::Bytes> {
    let Some((&size, rest)) = data.split_first() else { return Vec::new() };
    rest.chunks(size as usize % 64 + 1).map(bytes::Bytes::copy_from_slice).collect()
}
