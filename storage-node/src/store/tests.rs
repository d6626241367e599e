//! The store's tests: writes, reads and reconciliation against a real folder.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::ChunkId;
use tokio::sync::mpsc;

use super::write::DIRECT_BUF;
use super::*;
use crate::blocks::BLOCK;

/// Sends `pieces` as one upload, ended.
fn send(store: &ChunkStore, check: WriteCheck, pieces: &[&[u8]]) -> Result<ChunkPutResponse, StoreError> {
    let mut write = store.begin_write(check)?;
    // Two pieces a message, as a node's receiver gathers them.
    for pair in pieces.chunks(2) {
        write.write(pair.iter().map(|p| bytes::Bytes::copy_from_slice(p)).collect())?;
    }
    store.finish_write(write)
}

/// Stores `data` the way a gateway does: in 1000-byte pieces, then its trailer.
fn put(store: &ChunkStore, data: &[u8]) -> Result<ChunkPutResponse, StoreError> {
    let trailer = Trailer { id: ChunkId::of(data), crc32c: crc32c::crc32c(data) }.to_bytes();
    let mut pieces: Vec<&[u8]> = data.chunks(1000).collect();
    pieces.push(&trailer);
    send(store, WriteCheck::Trailer, &pieces)
}

fn files_under(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                files_under(&p)
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn put_is_content_addressed_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    let data = vec![7u8; 5000];
    let first = put(&store, &data).unwrap();
    assert_eq!(first.id, ChunkId::of(&data));
    assert!(first.created);
    let second = send(&store, WriteCheck::Id(first.id), &[&data]).unwrap();
    assert!(!second.created);
    assert_eq!(store.totals().unwrap(), (1, 5000));
    assert_eq!(files_under(&dir.path().join("tmp")), 0);
}

#[test]
fn chunks_of_any_length_are_written_whole() {
    // Whole direct-write blocks, a tail shorter than the alignment, and
    // pieces that straddle both.
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 8 << 20).unwrap();
    for len in [0, 1, 4095, 4096, 4097, DIRECT_BUF, DIRECT_BUF + 1, 2 * DIRECT_BUF + DIRECT_BUF / 2 + 7] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
        let id = put(&store, &data).unwrap().id;
        assert_eq!(fs::read(store.chunk_path(&id)).unwrap(), data, "{len} bytes");
        // And read back whole around the page cache, checked.
        assert_eq!(read_back(&store, id).unwrap(), data, "{len} bytes read back");
    }
}

#[test]
fn bad_hash_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    let wrong = ChunkId::of(b"something else");
    let err = send(&store, WriteCheck::Id(wrong), &[b"actual bytes"]).unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    assert_eq!(store.totals().unwrap(), (0, 0));
    assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
}

#[test]
fn trailer_may_arrive_split_and_a_bad_crc_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    let data = b"bytes the gateway hashed";
    let trailer = Trailer { id: ChunkId::of(data), crc32c: crc32c::crc32c(data) }.to_bytes();
    // The trailer straddles pieces, and the last piece is shorter than it.
    let stored = send(&store, WriteCheck::Trailer, &[&data[..5], &data[5..], &trailer[..30], &trailer[30..]]);
    assert_eq!(stored.unwrap().id, ChunkId::of(data));
    assert_eq!(store.info(&ChunkId::of(data)).unwrap().crc32c, Some(crc32c::crc32c(data)));
    assert_eq!(read_back(&store, ChunkId::of(data)).unwrap(), data);

    let other = b"other bytes, same length!";
    let bad = Trailer { id: ChunkId::of(other), crc32c: crc32c::crc32c(data) }.to_bytes();
    let err = send(&store, WriteCheck::Trailer, &[other, &bad]).unwrap_err();
    assert!(matches!(err, StoreError::CrcMismatch { .. }), "{err}");
    let err = send(&store, WriteCheck::Trailer, &[&trailer[..20]]).unwrap_err();
    assert!(matches!(err, StoreError::NoTrailer), "{err}");
    assert_eq!(store.totals().unwrap().0, 1);
    assert_eq!(files_under(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn aborted_and_oversized_uploads_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ChunkStore::open(dir.path(), 100).unwrap());
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(PutMessage::Data(vec![bytes::Bytes::from_static(b"partial")])).unwrap();
    drop(tx);
    let aborted = receive_chunk(store.clone(), WriteCheck::Trailer, rx).await;
    assert!(matches!(aborted, Err(StoreError::Aborted)));
    assert!(matches!(put(&store, &[1u8; 101]), Err(StoreError::TooLarge(100))));
    assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
}

#[test]
fn reconcile_finds_temp_files_strays_and_missing_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, lost, stray) = {
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let kept = put(&store, b"kept").unwrap().id;
        let lost = put(&store, b"lost").unwrap().id;
        fs::remove_file(store.chunk_path(&lost)).unwrap();
        // A chunk file written behind the node's back, with the right name.
        let stray = ChunkId::of(b"stray");
        let path = store.chunk_path(&stray);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"stray").unwrap();
        // A file whose bytes do not match its name, and an interrupted put.
        let liar = store.chunk_path(&ChunkId::of(b"liar"));
        fs::create_dir_all(liar.parent().unwrap()).unwrap();
        fs::write(&liar, b"not the liar bytes").unwrap();
        fs::write(dir.path().join("tmp").join("123.tmp"), b"half a chunk").unwrap();
        (kept, lost, stray)
    };
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    let report = store.last_reconcile();
    assert_eq!(report.removed_temp_files, 1);
    assert_eq!(report.missing, vec![lost]);
    assert_eq!(store.lost(10).unwrap(), vec![lost], "to be reported to meta");
    assert_eq!(report.adopted, vec![stray]);
    assert_eq!(report.quarantined, vec![ChunkId::of(b"liar").to_hex()]);
    let ids: Vec<ChunkId> = store.list(None, 10).unwrap().into_iter().map(|c| c.id).collect();
    let mut expected = vec![kept, stray];
    expected.sort();
    assert_eq!(ids, expected);
}

/// Reads `range` of a chunk (all of it with None): the bytes handed out,
/// and how the read ended.
fn read_some(store: &ChunkStore, id: ChunkId, range: Option<(u64, u64)>) -> (Vec<u8>, Result<(), StoreError>) {
    let mut got = Vec::new();
    let ended = (|| {
        let mut reader = ChunkReader::new(store.open_chunk(&id)?, range)?;
        while let Some(block) = reader.next_block()? {
            got.extend_from_slice(&block);
        }
        Ok(())
    })();
    (got, ended)
}

/// What a node holds for `id`, read back whole and checked.
fn read_back(store: &ChunkStore, id: ChunkId) -> Result<Vec<u8>, StoreError> {
    let (got, ended) = read_some(store, id, None);
    ended.map(|()| got)
}

#[test]
fn ranges_are_read_checked_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 4 << 20).unwrap();
    let data: Vec<u8> = (0..(BLOCK * 3 + 10)).map(|i| (i % 251) as u8).collect();
    let id = put(&store, &data).unwrap().id;
    let last = data.len() as u64 - 1;
    let b = BLOCK as u64;
    for (start, end) in [(0, 0), (0, last), (1, b - 1), (b - 1, b), (b, 2 * b - 1), (b + 5, 3 * b + 3), (last, last)] {
        let (got, ended) = read_some(&store, id, Some((start, end)));
        ended.unwrap();
        assert_eq!(got, data[start as usize..=end as usize], "{start}-{end}");
    }
}

#[test]
fn no_byte_of_a_bad_block_is_handed_out_whole_or_ranged() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 4 << 20).unwrap();
    let data: Vec<u8> = (0..(BLOCK * 2 + 10)).map(|i| (i % 251) as u8).collect();
    let id = put(&store, &data).unwrap().id;
    let b = BLOCK as u64;
    // A byte flipped at the start, the middle and the end of the chunk.
    for flipped in [0, BLOCK + 17, data.len() - 1] {
        let mut rotten = data.clone();
        rotten[flipped] ^= 1;
        let bad_block = flipped / BLOCK;
        for range in
            [None, Some((0, data.len() as u64 - 1)), Some((3, 2 * b + 4)), Some((flipped as u64, flipped as u64))]
        {
            fs::write(store.chunk_path(&id), &rotten).unwrap();
            let (got, ended) = read_some(&store, id, range);
            assert!(matches!(ended, Err(StoreError::Corrupt(_))), "byte {flipped}, {range:?}: {ended:?}");
            // What was handed out is the good blocks before the bad one, and right.
            let start = range.map_or(0, |(s, _)| s as usize);
            let bad_block_sent = !got.is_empty() && start + got.len() > bad_block * BLOCK;
            assert!(!bad_block_sent, "byte {flipped}, {range:?}: bytes of the bad block left");
            assert_eq!(got, data[start..start + got.len()]);
        }
    }
    // A file cut short, or grown, fails too.
    for wrong in [&data[..data.len() - 1], &[&data[..], b"x"].concat()[..]] {
        fs::write(store.chunk_path(&id), wrong).unwrap();
        assert!(matches!(read_back(&store, id), Err(StoreError::Corrupt(_))));
    }
}

#[tokio::test]
async fn a_bad_copy_is_refused_before_a_byte_is_sent_quarantined_and_noted_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ChunkStore::open(dir.path(), 4 << 20).unwrap());
    let data: Vec<u8> = (0..(BLOCK * 5 + 10)).map(|i| (i % 251) as u8).collect();
    let id = put(&store, &data).unwrap().id;
    let mut rotten = data.clone();
    rotten[1] ^= 1;
    fs::write(store.chunk_path(&id), &rotten).unwrap();

    let read = read_stream(store.clone(), store.open_chunk(&id).unwrap(), None).await;
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "the first block is checked before the stream starts");
    assert_eq!(store.lost(10).unwrap(), vec![id]);
    assert!(matches!(store.open_chunk(&id), Err(StoreError::NotFound)), "no longer indexed");
    assert!(!store.chunk_path(&id).exists());
    assert_eq!(files_under(&dir.path().join("quarantine")), 1, "kept for an operator to look at");

    // A copy written again is no longer lost; meta is told only of what still is.
    put(&store, &data).unwrap();
    assert!(store.lost(10).unwrap().is_empty());
    let other = put(&store, b"other").unwrap().id;
    fs::remove_file(store.chunk_path(&other)).unwrap();
    assert!(matches!(store.open_chunk(&other), Err(StoreError::FileGone)));
    assert_eq!(store.lost(10).unwrap(), vec![other]);
    store.reported(&[other]).unwrap();
    assert!(store.lost(10).unwrap().is_empty());

    // A bad block later in the chunk (after the first batch read) ends the
    // stream with an error after the good bytes before it.
    let mut rotten = data.clone();
    rotten[BLOCK * 4 + 3] ^= 1;
    fs::write(store.chunk_path(&id), &rotten).unwrap();
    let mut rx = read_stream(store.clone(), store.open_chunk(&id).unwrap(), None).await.unwrap();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(_) => failed = true,
        }
    }
    assert!(failed);
    assert_eq!(got, data[..BLOCK * 4]);
    assert_eq!(store.lost(10).unwrap(), vec![id]);
}

#[test]
fn chunks_indexed_before_block_checksums_get_them_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (good, rotten) = {
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let good = put(&store, b"good").unwrap().id;
        let rotten = put(&store, b"rotten").unwrap().id;
        fs::write(store.chunk_path(&rotten), b"rotteN").unwrap();
        (good, rotten)
    };
    let index = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    index.execute("UPDATE chunks SET blocks = NULL, crc32c = NULL", []).unwrap();
    drop(index);
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.last_reconcile().corrupt, vec![rotten]);
    assert_eq!(store.lost(10).unwrap(), vec![rotten]);
    assert_eq!(read_back(&store, good).unwrap(), b"good");
    assert_eq!(store.info(&good).unwrap().crc32c, Some(crc32c::crc32c(b"good")));
}

#[test]
fn a_forged_chunk_neither_poisons_nor_is_kept_over_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
    let real = b"the bytes someone will upload".to_vec();
    let id = ChunkId::of(&real);
    let forged = b"forged bytes under the real id".to_vec();
    // A trailer claims the real id with the forged bytes' CRC32C: the node
    // cannot tell on its own, so it keeps them...
    let lie = Trailer { id, crc32c: crc32c::crc32c(&forged) }.to_bytes();
    send(&store, WriteCheck::Trailer, &[&forged, &lie]).unwrap();
    // ...until the real bytes arrive: they are hashed, and replace them.
    let stored = put(&store, &real).unwrap();
    assert!(stored.created, "the real bytes take the forged file's place");
    assert_eq!(read_back(&store, id).unwrap(), real);

    // Forged bytes sent for a chunk held correctly are refused, and change nothing.
    let err = send(&store, WriteCheck::Trailer, &[&forged, &lie]).unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    assert_eq!(read_back(&store, id).unwrap(), real);
    // The same bytes again are kept once.
    assert!(!put(&store, &real).unwrap().created);
    assert_eq!(store.totals().unwrap(), (1, real.len() as u64));
    assert_eq!(files_under(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn a_chunk_arriving_in_many_groups_is_written_in_batches_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ChunkStore::open(dir.path(), 8 << 20).unwrap());
    let data: Vec<u8> = (0..3_000_007u32).map(|i| (i % 251) as u8).collect();
    let trailer = Trailer { id: ChunkId::of(&data), crc32c: crc32c::crc32c(&data) }.to_bytes();
    let (tx, rx) = mpsc::channel(4);
    let writer = tokio::spawn(receive_chunk(store.clone(), WriteCheck::Trailer, rx));
    for group in data.chunks(300_000) {
        tx.send(PutMessage::Data(vec![bytes::Bytes::copy_from_slice(group)])).await.unwrap();
    }
    tx.send(PutMessage::Data(vec![bytes::Bytes::copy_from_slice(&trailer)])).await.unwrap();
    tx.send(PutMessage::End).await.unwrap();
    let stored = writer.await.unwrap().unwrap();
    assert_eq!((stored.id, stored.size), (ChunkId::of(&data), data.len() as u64));
    assert_eq!(read_back(&store, stored.id).unwrap(), data);
}

#[test]
fn a_disk_below_the_reserve_takes_no_chunk_but_serves_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"kept before the disk filled".to_vec();
    let id = put(&ChunkStore::open(dir.path(), 1 << 20).unwrap(), &data).unwrap().id;
    let full = ChunkStore::open(dir.path(), 1 << 20).unwrap().with_reserve(u64::MAX);
    let refused = put(&full, b"one more").unwrap_err();
    assert!(matches!(refused, StoreError::DiskFull { .. }) && refused.is_disk_full(), "{refused}");
    assert_eq!(full.disk_space().0, 0, "nothing usable is reported");
    assert_eq!(full.info(&id).unwrap().size, data.len() as u64, "what it holds is still there");
    assert!(full.delete(&id).unwrap());
}
