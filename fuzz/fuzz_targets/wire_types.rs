//! What crosses a wire between roles, as a receiver parses it: chunk ids,
//! chunk trailers, snapshot pieces, meta commands and queries, manifests.
#![no_main]

use jadfs_common::node::Trailer;
use jadfs_common::{ChunkId, ObjectManifest};
use jadfs_meta::api::{Command, Query, SnapshotPiece};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<ChunkId>() {
            assert_eq!(id.to_hex(), text, "only the canonical spelling parses");
        }
    }
    if let Some(trailer) = Trailer::parse(data) {
        assert_eq!(&trailer.to_bytes()[..], data);
    }
    let _ = SnapshotPiece::split(data);
    let _ = serde_json::from_slice::<Command>(data);
    let _ = serde_json::from_slice::<Query>(data);
    let _ = serde_json::from_slice::<ObjectManifest>(data);
});
