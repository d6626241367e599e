//! The store's tests: writes, reads and reconciliation against a real folder.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::ChunkId;
use tokio::sync::mpsc;

use super::read::READ_BLOCK;
use super::write::DIRECT_BUF;
use super::*;
use crate::fs::set_direct;

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
        let (file, info) = store.open_chunk(&id).unwrap();
        set_direct(&file, true).unwrap();
        let mut got = Vec::new();
        read_verified(file, id, ReadCheck::for_chunk(&info), |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap();
        assert_eq!(got, data, "{len} bytes read back");
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
    let (file, info) = store.open_chunk(&ChunkId::of(data)).unwrap();
    assert_eq!(info.crc32c, Some(crc32c::crc32c(data)));
    let mut got = Vec::new();
    read_verified(file, info.id, ReadCheck::for_chunk(&info), |b| {
        got.extend_from_slice(&b);
        true
    })
    .unwrap();
    assert_eq!(got, data);

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
    assert_eq!(report.adopted, vec![stray]);
    assert_eq!(report.quarantined, vec![ChunkId::of(b"liar").to_hex()]);
    let ids: Vec<ChunkId> = store.list(None, 10).unwrap().into_iter().map(|c| c.id).collect();
    let mut expected = vec![kept, stray];
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn verified_read_withholds_the_end_of_a_corrupt_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 4 << 20).unwrap();
    let data: Vec<u8> = (0..(READ_BLOCK * 2 + 10)).map(|i| (i % 251) as u8).collect();
    let id = put(&store, &data).unwrap().id;
    let crc = store.info(&id).unwrap().crc32c.expect("recorded at write");

    for check in [ReadCheck::Crc32c(crc), ReadCheck::Id] {
        fs::write(store.chunk_path(&id), &data).unwrap();
        let mut got = Vec::new();
        let (file, _) = store.open_chunk(&id).unwrap();
        read_verified(file, id, check, |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap();
        assert_eq!(got, data);

        let mut corrupt = data.clone();
        corrupt[READ_BLOCK * 2 + 5] ^= 1;
        fs::write(store.chunk_path(&id), &corrupt).unwrap();
        let mut got = Vec::new();
        let (file, _) = store.open_chunk(&id).unwrap();
        let err = read_verified(file, id, check, |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{check:?}: {err}");
        assert!(got.len() < data.len());
    }
}

/// What a node holds for `id`, read back whole and checked.
fn read_back(store: &ChunkStore, id: ChunkId) -> Result<Vec<u8>, StoreError> {
    let (file, info) = store.open_chunk(&id)?;
    let mut got = Vec::new();
    read_verified(file, id, ReadCheck::for_chunk(&info), |b| {
        got.extend_from_slice(&b);
        true
    })?;
    Ok(got)
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
