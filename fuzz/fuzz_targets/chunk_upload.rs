//! A storage node receiving a chunk from a gateway: any bytes, cut
//! anywhere, the last 36 of them read as the trailer. Whatever is stored
//! must be exactly the bytes before the trailer, under the id and CRC32C
//! the trailer named; anything else is refused and leaves nothing.
#![no_main]

mod common;

use std::sync::OnceLock;

use jadfs_common::node::Trailer;
use jadfs_storage_node::store::WriteCheck;
use jadfs_storage_node::ChunkStore;
use libfuzzer_sys::fuzz_target;

fn store() -> &'static ChunkStore {
    static STORE: OnceLock<(tempfile::TempDir, ChunkStore)> = OnceLock::new();
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        (dir, store)
    });
    store
}

fuzz_target!(|data: &[u8]| {
    let store = store();
    let Ok(mut write) = store.begin_write(WriteCheck::Trailer) else { return };
    if write.write(common::pieces(data)).is_err() {
        return;
    }
    let body = data.get(1..).unwrap_or_default();
    if let Ok(stored) = store.finish_write(write) {
        let (bytes, tail) = body.split_at(body.len() - Trailer::LEN);
        let trailer = Trailer::parse(tail).expect("a stored chunk had a trailer");
        assert_eq!((stored.id, stored.size), (trailer.id, bytes.len() as u64));
        assert_eq!(crc32c::crc32c(bytes), trailer.crc32c);
    }
});
