//! The applier against an in-memory state.

use jadfs_common::ObjectManifest;

use super::Applier;
use crate::api::*;
use crate::state::rows::load_manifest;
use crate::state::schema;

#[test]
fn a_batch_applies_in_order_and_each_command_fails_alone() {
    let mut conn = schema::in_memory();
    let absent = || Some(WriteCondition { if_none_match: Some("*".into()), ..Default::default() });
    let put = |bucket: &str, key: &str, condition: Option<WriteCondition>| {
        let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
            "size": 2, "etag": format!("\"{key}\""), "last_modified_ms": 0, "content_type": null,
            "chunks": [], "inline": "aGk="
        }))
        .unwrap();
        Command::PutObject { bucket: bucket.into(), key: key.into(), manifest, placement: vec![], condition }
    };
    let batch = Command::Batch(vec![
        Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0 },
        put("b", "k", absent()),
        put("missing", "k", None),
        put("b", "k", absent()),
        Command::Batch(vec![]),
    ]);
    let tx = conn.transaction().unwrap();
    let CommandResult::Batch(results) = Applier::new(&tx, 1).apply(&batch).unwrap() else { panic!("not a batch") };
    tx.commit().unwrap();
    assert_eq!(results[0], CommandResult::Done);
    assert_eq!(results[1], CommandResult::Done);
    assert_eq!(results[2], CommandResult::Failed(MetaError::NoSuchBucket));
    assert_eq!(results[3], CommandResult::Failed(MetaError::PreconditionFailed), "the first put already applied");
    assert!(matches!(results[4], CommandResult::Failed(MetaError::Internal(_))));
    let stored = load_manifest(&conn, "b", "k").unwrap().unwrap();
    assert_eq!(stored.inline.as_deref(), Some(&b"hi"[..]));
    let row: Vec<u8> = conn.query_row("SELECT manifest FROM objects", [], |r| r.get(0)).unwrap();
    assert!(!String::from_utf8(row).unwrap().contains("inline"), "the bytes live beside the row");

    let tx = conn.transaction().unwrap();
    Applier::new(&tx, 2).apply(&Command::DeleteObject { bucket: "b".into(), key: "k".into() }).unwrap();
    tx.commit().unwrap();
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM inline_objects", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_refused_command_leaves_nothing_of_what_it_wrote() {
    let mut conn = schema::in_memory();
    let tx = conn.transaction().unwrap();
    let applier = Applier::new(&tx, 1);
    let result = applier
        .under_savepoint(|| {
            tx.execute("INSERT INTO buckets (name, owner, created_ms) VALUES ('half', 'o', 0)", [])?;
            super::refuse(MetaError::PreconditionFailed)
        })
        .unwrap();
    assert_eq!(result, CommandResult::Failed(MetaError::PreconditionFailed));
    applier.apply(&Command::CreateBucket { name: "kept".into(), owner: "o".into(), created_ms: 0 }).unwrap();
    tx.commit().unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM buckets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["kept"]);
}

#[test]
fn a_lost_copy_leaves_its_placement_and_queues_a_repair() {
    let mut conn = schema::in_memory();
    let chunk = jadfs_common::ChunkId::of(b"bytes");
    let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
        "size": 5, "etag": "\"e\"", "last_modified_ms": 0, "content_type": null,
        "chunks": [{"id": chunk.to_hex(), "offset": 0, "size": 5}]
    }))
    .unwrap();
    let unused = jadfs_common::ChunkId::of(b"unused");
    let commands = [
        Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0 },
        Command::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            manifest,
            placement: vec![vec![1, 2, 3]],
            condition: None,
        },
        Command::CopiesLost { node: 2, chunks: vec![chunk, unused] },
    ];
    let tx = conn.transaction().unwrap();
    for (i, command) in commands.iter().enumerate() {
        assert_eq!(Applier::new(&tx, i as u64 + 1).apply(command).unwrap(), CommandResult::Done);
    }
    tx.commit().unwrap();
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &chunk).unwrap(), vec![1, 3]);
    let queued: Vec<Vec<u8>> = conn
        .prepare("SELECT chunk FROM repairs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(queued, vec![chunk.as_bytes().to_vec()], "only the chunk in use");
}
