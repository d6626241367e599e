//! The proof every internal request carries: any header, method and path.
//! Nothing may panic, and nothing passes but what the signer signed.
#![no_main]

mod common;

use std::sync::{Arc, OnceLock};

use jadfs_common::cluster_auth::{ClusterKey, Verifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let verifier = VERIFIER
        .get_or_init(|| Verifier::new(Arc::new(ClusterKey::from_secret("the fuzzer's cluster secret").unwrap())));
    let f = common::fields(data, 3);
    let checked = verifier.check(&f[0], &f[1], Some(&f[2]), 1_700_000_000);
    assert!(checked.is_err(), "a forged proof passed: {:?}", f[2]);
});
