//! The applier against an in-memory state.

use jadfs_common::ObjectManifest;

use super::Applier;
use crate::api::*;
use crate::state::rows::load_manifest;
use crate::state::schema;

/// A put into bucket `b` of a 2-byte inline object written at
/// `written_ms`, its ETag `etag`, with `tags`.
fn put_inline(key: &str, written_ms: i64, etag: &str, tags: &[(&str, &str)]) -> Command {
    let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
        "size": 2, "etag": format!("\"{etag}\""), "last_modified_ms": written_ms, "content_type": null,
        "chunks": [], "inline": "aGk=", "tags": tags,
    }))
    .unwrap();
    Command::PutObject {
        bucket: "b".into(),
        key: key.into(),
        manifest,
        placement: vec![],
        condition: None,
        write_id: None,
    }
}

/// What a put answers in a bucket without versioning.
const PUT: CommandResult = CommandResult::Version { version_id: None, delete_marker: false };

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
        Command::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            manifest,
            placement: vec![],
            condition,
            write_id: None,
        }
    };
    let batch = Command::Batch(vec![
        Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
        put("b", "k", absent()),
        put("missing", "k", None),
        put("b", "k", absent()),
        Command::Batch(vec![]),
    ]);
    let tx = conn.transaction().unwrap();
    let CommandResult::Batch(results) = Applier::new(&tx, 1).apply(&batch).unwrap() else { panic!("not a batch") };
    tx.commit().unwrap();
    assert_eq!(results[0], CommandResult::Done);
    assert_eq!(results[1], CommandResult::Version { version_id: None, delete_marker: false });
    assert_eq!(results[2], CommandResult::Failed(MetaError::NoSuchBucket));
    assert_eq!(results[3], CommandResult::Failed(MetaError::PreconditionFailed), "the first put already applied");
    assert!(matches!(results[4], CommandResult::Failed(MetaError::Internal(_))));
    let stored = load_manifest(&conn, "b", "k").unwrap().unwrap();
    assert_eq!(stored.inline.as_deref(), Some(&b"hi"[..]));
    let row: Vec<u8> = conn.query_row("SELECT manifest FROM objects", [], |r| r.get(0)).unwrap();
    assert!(!String::from_utf8(row).unwrap().contains("inline"), "the bytes live beside the row");

    let tx = conn.transaction().unwrap();
    Applier::new(&tx, 2)
        .apply(&Command::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 0,
            bypass_governance: false,
            condition: None,
        })
        .unwrap();
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
    applier
        .apply(&Command::CreateBucket { name: "kept".into(), owner: "o".into(), created_ms: 0, object_lock: false })
        .unwrap();
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
        Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
        Command::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            manifest,
            placement: vec![vec![1, 2, 3]],
            condition: None,
            write_id: None,
        },
        Command::CopiesLost { node: 2, chunks: vec![chunk, unused] },
    ];
    let tx = conn.transaction().unwrap();
    for (i, command) in commands.iter().enumerate() {
        let result = Applier::new(&tx, i as u64 + 1).apply(command).unwrap();
        assert!(matches!(result, CommandResult::Done | PUT), "{result:?}");
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

/// Applies `commands` in order, each at the next log index, and returns
/// their results.
fn apply_all(conn: &mut rusqlite::Connection, first_index: u64, commands: &[Command]) -> Vec<CommandResult> {
    let tx = conn.transaction().unwrap();
    let results =
        commands.iter().enumerate().map(|(i, c)| Applier::new(&tx, first_index + i as u64).apply(c).unwrap()).collect();
    tx.commit().unwrap();
    results
}

fn one_chunk_object(key: &str, chunk: jadfs_common::ChunkId, nodes: Vec<u64>, write_id: Option<u64>) -> Command {
    let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
        "size": 5, "etag": "\"e\"", "last_modified_ms": 0, "content_type": null,
        "chunks": [{"id": chunk.to_hex(), "offset": 0, "size": 5}]
    }))
    .unwrap();
    Command::PutObject {
        bucket: "b".into(),
        key: key.into(),
        manifest,
        placement: vec![nodes],
        condition: None,
        write_id,
    }
}

fn deletions(conn: &rusqlite::Connection) -> Vec<(Vec<u8>, i64)> {
    let mut stmt = conn.prepare("SELECT chunk, node FROM deletions ORDER BY chunk, node").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_reference_and_a_collection_never_both_win() {
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    let pin =
        |write_id, nodes: Vec<u64>, expires_ms| Command::Pin { write_id, chunk: x, nodes, expires_ms, lease_ms: 0 };
    let collect = |orphaned_by_log, now_ms| Command::Collect { orphaned_by_log, now_ms };
    apply_all(
        &mut conn,
        1,
        &[Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false }],
    );

    // Written, pinned, committed, deleted: orphaned at index 5.
    let r = apply_all(&mut conn, 2, &[pin(7, vec![1, 2, 3], 1000), one_chunk_object("k", x, vec![1, 2, 3], Some(7))]);
    assert_eq!(r, [CommandResult::Pinned { refused: vec![] }, PUT]);
    apply_all(
        &mut conn,
        5,
        &[Command::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 0,
            bypass_governance: false,
            condition: None,
        }],
    );

    // A new write of the same bytes pins it: a collection leaves it alone.
    assert_eq!(apply_all(&mut conn, 6, &[pin(8, vec![1, 2, 3], 1000)])[0], CommandResult::Pinned { refused: vec![] });
    assert_eq!(apply_all(&mut conn, 7, &[collect(5, 500)])[0], CommandResult::Collected(0));
    // Its pin expires (the write stalled): collected, every copy to delete,
    // and the late commit is refused rather than trusting deleted copies.
    assert_eq!(apply_all(&mut conn, 8, &[collect(5, 2000)])[0], CommandResult::Collected(1));
    assert_eq!(deletions(&conn).len(), 3);
    let late = apply_all(&mut conn, 9, &[one_chunk_object("k2", x, vec![1, 2, 3], Some(8))]);
    assert!(matches!(&late[0], CommandResult::Failed(MetaError::ChunkGone(_))), "{late:?}");

    // A write after the collection is told which nodes still delete the
    // chunk; its commit places the chunk only elsewhere and queues repair.
    let r = apply_all(&mut conn, 10, &[pin(9, vec![2, 4], 5000)]);
    assert_eq!(r[0], CommandResult::Pinned { refused: vec![2] });
    apply_all(&mut conn, 11, &[one_chunk_object("k3", x, vec![2, 4], Some(9))]);
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &x).unwrap(), vec![4], "never on a node deleting it");
    let queued: i64 = conn.query_row("SELECT COUNT(*) FROM repairs", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 1);
    let pins: i64 = conn.query_row("SELECT COUNT(*) FROM pins", [], |r| r.get(0)).unwrap();
    assert_eq!(pins, 0, "a commit drops its write's pins");

    // The nodes delete; the chunk in use is never collected.
    let done = vec![(x, 1), (x, 2), (x, 3)];
    apply_all(&mut conn, 12, &[Command::CopiesDeleted { copies: done }, collect(100, 9000)]);
    assert!(deletions(&conn).is_empty());
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &x).unwrap(), vec![4]);
}

#[test]
fn strays_are_copies_no_placement_names_and_no_write_pins() {
    let mut conn = schema::in_memory();
    let (named, pinned, stray) = (
        jadfs_common::ChunkId::of(b"named"),
        jadfs_common::ChunkId::of(b"pinned"),
        jadfs_common::ChunkId::of(b"stray"),
    );
    let r = apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            Command::Pin { write_id: 1, chunk: named, nodes: vec![1], expires_ms: 1000, lease_ms: 0 },
            one_chunk_object("k", named, vec![1], Some(1)),
            Command::Pin { write_id: 2, chunk: pinned, nodes: vec![1], expires_ms: 1000, lease_ms: 0 },
            Command::CollectStrays { node: 1, chunks: vec![named, pinned, stray], now_ms: 500 },
        ],
    );
    assert_eq!(r[4], CommandResult::Collected(1));
    assert_eq!(deletions(&conn), vec![(stray.as_bytes().to_vec(), 1)]);
    // A copy of a chunk in use on a node its placement does not name is surplus.
    let r = apply_all(&mut conn, 6, &[Command::CollectStrays { node: 2, chunks: vec![named], now_ms: 500 }]);
    assert_eq!(r[0], CommandResult::Collected(1));
}

#[test]
fn a_copy_reuses_chunks_where_they_are_and_only_while_they_are_in_use() {
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            Command::Pin { write_id: 1, chunk: x, nodes: vec![1, 2], expires_ms: 1000, lease_ms: 0 },
            one_chunk_object("source", x, vec![1, 2], Some(1)),
            Command::CopiesLost { node: 2, chunks: vec![x] },
        ],
    );
    // A gateway's copy names the placement it read, now stale: the chunk is
    // reused (not pinned by the copy) and stays where the state says.
    let r = apply_all(&mut conn, 5, &[one_chunk_object("copy", x, vec![1, 2], Some(99))]);
    assert_eq!(r[0], PUT);
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &x).unwrap(), vec![1]);
    // Once nothing uses it, a copy of it is refused.
    let y = jadfs_common::ChunkId::of(b"y");
    let r = apply_all(&mut conn, 6, &[one_chunk_object("copy2", y, vec![1], Some(100))]);
    assert!(matches!(&r[0], CommandResult::Failed(MetaError::ChunkGone(_))), "{r:?}");
}

#[test]
fn surplus_copies_are_trimmed_to_their_number_and_never_under_a_pin() {
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    let pin = |write_id, nodes: Vec<u64>| Command::Pin { write_id, chunk: x, nodes, expires_ms: 1000, lease_ms: 0 };
    let trim = |nodes: Vec<u64>| Command::TrimCopies { chunk: x, nodes, now_ms: 500 };
    let named = |conn: &rusqlite::Connection| crate::state::rows::chunk_nodes(conn, &x).unwrap();
    let surplus = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM surplus", [], |r| r.get(0)).unwrap()
    };
    apply_all(
        &mut conn,
        1,
        &[Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false }],
    );
    // The same bytes written twice, the second time partly elsewhere.
    apply_all(
        &mut conn,
        2,
        &[
            pin(1, vec![1, 2, 3]),
            one_chunk_object("k1", x, vec![1, 2, 3], Some(1)),
            pin(2, vec![2, 3, 4]),
            one_chunk_object("k2", x, vec![2, 3, 4], Some(2)),
        ],
    );
    assert_eq!(named(&conn), [1, 2, 3, 4]);
    assert_eq!(surplus(&conn), 1, "queued for trimming");

    // A write in flight pins the chunk: nothing is trimmed under it.
    let r = apply_all(&mut conn, 6, &[pin(3, vec![4]), trim(vec![4])]);
    assert_eq!(r[1], CommandResult::Collected(0));
    assert_eq!(named(&conn), [1, 2, 3, 4]);

    // Its writer died: once the lease lapsed, the pin holds nothing, and the
    // copies are trimmed to three, however many the leader names.
    let lapsed = Command::TrimCopies { chunk: x, nodes: vec![4, 1], now_ms: 1001 };
    let r = apply_all(&mut conn, 8, &[lapsed]);
    assert_eq!(r[0], CommandResult::Collected(1));
    assert_eq!(named(&conn), [1, 2, 3]);
    assert_eq!(deletions(&conn), [(x.as_bytes().to_vec(), 4)]);
    assert_eq!(surplus(&conn), 0, "done");
    // A later write does not keep the chunk on the node deleting it.
    let r = apply_all(&mut conn, 10, &[pin(5, vec![4, 1])]);
    assert_eq!(r[0], CommandResult::Pinned { refused: vec![4] });
    assert_eq!(apply_all(&mut conn, 11, &[trim(vec![2])])[0], CommandResult::Collected(0), "nothing queued");
    assert_eq!(named(&conn), [1, 2, 3]);
}

#[test]
fn a_move_swaps_one_holder_for_another_and_never_under_another_write() {
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    let pin = |write_id, nodes: Vec<u64>| Command::Pin { write_id, chunk: x, nodes, expires_ms: 1000, lease_ms: 0 };
    let moved = |write_id| Command::MoveCopy { chunk: x, from: 1, to: 4, write_id, now_ms: 0 };
    let named = |conn: &rusqlite::Connection| crate::state::rows::chunk_nodes(conn, &x).unwrap();
    apply_all(
        &mut conn,
        1,
        &[Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false }],
    );
    apply_all(&mut conn, 2, &[pin(1, vec![1, 2, 3]), one_chunk_object("k", x, vec![1, 2, 3], Some(1))]);

    // Another write pins the chunk: the move does nothing, and drops its pin.
    let r = apply_all(&mut conn, 4, &[pin(2, vec![1]), pin(3, vec![4]), moved(3)]);
    assert_eq!(r[2], CommandResult::Collected(0));
    assert_eq!(named(&conn), [1, 2, 3]);
    assert_eq!(apply_all(&mut conn, 7, &[moved(3)])[0], CommandResult::Collected(0), "no pin: no move");

    // The other write's lease lapsed (its writer died): node 4 takes node
    // 1's place in one step, node 1's copy is deleted.
    let lapsed = Command::MoveCopy { chunk: x, from: 1, to: 4, write_id: 5, now_ms: 1001 };
    let r = apply_all(
        &mut conn,
        8,
        &[Command::Pin { write_id: 5, chunk: x, nodes: vec![4], expires_ms: 2000, lease_ms: 0 }, lapsed],
    );
    assert_eq!(r[1], CommandResult::Collected(1));
    assert_eq!(named(&conn), [2, 3, 4]);
    assert_eq!(deletions(&conn), [(x.as_bytes().to_vec(), 1)]);
    assert_eq!(apply_all(&mut conn, 11, &[pin(6, vec![4]), moved(6)])[1], CommandResult::Collected(0), "done once");
}

#[test]
fn a_command_applied_twice_never_stops_the_state_machine() {
    // A client retries a write whose answer it lost: the log then holds the
    // command twice. Seen in the fault matrix: a second CreateUpload broke
    // the uploads' primary key, and the storage error stopped every voter.
    let mut conn = schema::in_memory();
    let upload: UploadInfo = serde_json::from_value(serde_json::json!({
        "upload_id": "u1", "key": "k", "owner": "o", "initiated_ms": 0,
        "metadata": {"content_type": null, "headers": [], "user_metadata": []}
    }))
    .unwrap();
    let create = |key: &str| Command::CreateUpload { bucket: "b".into(), key: key.into(), upload: upload.clone() };
    apply_all(
        &mut conn,
        1,
        &[Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false }],
    );
    let r = apply_all(&mut conn, 2, &[create("k"), create("k"), create("other")]);
    assert_eq!(r[0], CommandResult::Done);
    assert_eq!(r[1], CommandResult::Done, "the same upload again is done");
    assert!(matches!(&r[2], CommandResult::Failed(MetaError::Internal(_))), "a taken id is refused: {r:?}");

    // Whatever command breaks a constraint is refused on every replica alike.
    let tx = conn.transaction().unwrap();
    let applier = Applier::new(&tx, 5);
    let result = applier
        .under_savepoint(|| {
            tx.execute("INSERT INTO buckets (name, owner, created_ms) VALUES ('b', 'o', 0)", [])?;
            Ok(CommandResult::Done)
        })
        .expect("a broken constraint is no storage error");
    assert!(matches!(result, CommandResult::Failed(MetaError::Internal(_))), "{result:?}");
}

#[test]
fn a_retried_write_is_applied_once() {
    // Seen in the fault matrix under a leader partition: a DELETE committed
    // twice (its first answer lost, the gateway sent it again) undid the
    // writes acknowledged between the two.
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    let once = |request, command| Command::Once { request, command: Box::new(command) };
    let delete = once(
        7,
        Command::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 0,
            bypass_governance: false,
            condition: None,
        },
    );
    apply_all(
        &mut conn,
        1,
        &[Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false }],
    );
    let r = apply_all(&mut conn, 2, &[one_chunk_object("k", x, vec![1, 2, 3], None), delete.clone()]);
    let first = r[1].clone();
    apply_all(&mut conn, 4, &[one_chunk_object("k", x, vec![1, 2, 3], None)]);
    let r = apply_all(&mut conn, 5, &[delete]);
    assert_eq!(r[0], first, "the copy answers what the first did");
    assert!(load_manifest(&conn, "b", "k").unwrap().is_some(), "the newer object is still there");

    // A refused request changed nothing; sent again, it may take effect.
    let create = |request| {
        once(request, Command::CreateBucket { name: "c".into(), owner: "o".into(), created_ms: 0, object_lock: false })
    };
    let r = apply_all(&mut conn, 6, &[once(8, Command::DeleteBucket { name: "c".into() }), create(9), create(9)]);
    assert!(matches!(r[0], CommandResult::Failed(MetaError::NoSuchBucket)), "{r:?}");
    assert_eq!(r[1], CommandResult::Done);
    assert_eq!(r[2], CommandResult::Done, "not BucketAlreadyOwnedByYou: the same request");

    // Ids are forgotten once far behind.
    let remembered = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(remembered(&conn), 2);
    apply_all(&mut conn, 1_000_000, &[once(10, Command::DeleteBucket { name: "c".into() })]);
    assert_eq!(remembered(&conn), 1);
}

#[test]
fn lifecycle_steps_page_through_keys_and_judge_each_object_when_they_apply() {
    let mut conn = schema::in_memory();
    let put = |key: &str, written_ms: i64, tags: &[(&str, &str)]| put_inline(key, written_ms, "e", tags);
    let rule = |id: &str, prefix: &str, tags: Vec<(String, String)>| LifecycleRule {
        id: id.into(),
        enabled: true,
        filter: LifecycleFilter { prefix: prefix.into(), tags, ..Default::default() },
        expiration: Some(Expiration::Days(2)),
        ..Default::default()
    };
    let rules = vec![rule("logs", "logs/", vec![]), rule("tmp", "tmp/", vec![("t".into(), "1".into())])];
    let step = |after: Option<&str>, now_ms| Command::ApplyLifecycle {
        bucket: "b".into(),
        after: after.map(String::from),
        limit: 2,
        now_ms,
        day_ms: 10,
    };
    apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            put("keep/a", 0, &[]),
            put("logs/a", 0, &[]),
            put("logs/b", 15, &[]),
            put("tmp/a", 0, &[("t", "1")]),
            put("tmp/b", 0, &[("t", "2")]),
            Command::SetBucketLifecycle { bucket: "b".into(), rules: Some(rules) },
        ],
    );
    // At 20, what was written by 0 is due (2 days of 10 ms); logs/b, by 15, is not.
    let results = apply_all(&mut conn, 10, &[step(None, 20)]);
    assert_eq!(results, [CommandResult::Lifecycle { expired: 1, aborted: 0, next: Some("logs/a".into()) }]);
    // logs/b is rewritten (as written at 0) before the next step: it is
    // judged as it is when the step applies, not as it was listed.
    apply_all(&mut conn, 11, &[put("logs/b", 0, &[])]);
    let results = apply_all(&mut conn, 12, &[step(Some("logs/a"), 20), step(Some("tmp/a"), 20)]);
    assert_eq!(
        results,
        [
            CommandResult::Lifecycle { expired: 2, aborted: 0, next: Some("tmp/a".into()) },
            CommandResult::Lifecycle { expired: 0, aborted: 0, next: None },
        ]
    );
    let left: Vec<String> = conn
        .prepare("SELECT CAST(key AS TEXT) FROM objects ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["keep/a", "tmp/b"], "no rule names keep/, and tmp/b's tag does not match");
    // The round's progress, for `jadfs admin status`: 5 objects judged in
    // three steps, 3 expired, finished by the last step.
    let QueryResult::Stats(stats) = crate::state::query::answer(&conn, &Query::Stats).unwrap() else { panic!() };
    let run = LifecycleRun {
        bucket: "b".into(),
        started_ms: 20,
        stepped_ms: 20,
        finished_ms: Some(20),
        judged: 5,
        expired: 3,
        aborted: 0,
    };
    assert_eq!(stats.lifecycle, [run]);
    let delete = |key: &str| Command::DeleteObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: None,
        now_ms: 0,
        bypass_governance: false,
        condition: None,
    };
    let gone =
        apply_all(&mut conn, 14, &[delete("keep/a"), delete("tmp/b"), Command::DeleteBucket { name: "b".into() }]);
    assert_eq!(gone[2], CommandResult::Done);
    let stale = apply_all(&mut conn, 17, &[step(None, 20)]);
    assert_eq!(stale, [CommandResult::Failed(MetaError::NoSuchBucket)], "a bucket deleted since it was listed");
    let kept: i64 = conn.query_row("SELECT COUNT(*) FROM bucket_lifecycle", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 0, "its rules went with it");
    let runs: i64 = conn.query_row("SELECT COUNT(*) FROM lifecycle_runs", [], |r| r.get(0)).unwrap();
    assert_eq!(runs, 0, "and its rounds' progress");
}

#[test]
fn lifecycle_deletes_noncurrent_versions_past_their_days_and_lone_delete_markers() {
    let mut conn = schema::in_memory();
    let put = |key: &str, written_ms: i64| put_inline(key, written_ms, &written_ms.to_string(), &[]);
    let delete = |key: &str, now_ms| Command::DeleteObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: None,
        now_ms,
        bypass_governance: false,
        condition: None,
    };
    let rules = vec![
        LifecycleRule {
            id: "old".into(),
            enabled: true,
            noncurrent_days: Some(2),
            newer_noncurrent_versions: Some(1),
            ..Default::default()
        },
        LifecycleRule {
            id: "markers".into(),
            enabled: true,
            expiration: Some(Expiration::ExpiredObjectDeleteMarker),
            ..Default::default()
        },
    ];
    apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            Command::SetBucketVersioning { bucket: "b".into(), versioning: Versioning::Enabled },
            // k: written at 0, 10, 20, 30 (current): noncurrent since 10, 20, 30.
            put("k", 0),
            put("k", 10),
            put("k", 20),
            put("k", 30),
            // gone: one version under a delete marker; lone: a marker alone.
            put("gone", 0),
            delete("gone", 5),
            delete("lone", 5),
            Command::SetBucketLifecycle { bucket: "b".into(), rules: Some(rules) },
        ],
    );
    // At 45 (days of 10 ms): k's versions noncurrent since 10 and 20 are
    // past 2 days; the newest noncurrent one (since 30) is kept anyway, and
    // NewerNoncurrentVersions keeps one. gone's version is its newest
    // noncurrent one: kept, so its marker is not alone; lone's marker goes.
    let step = Command::ApplyLifecycle { bucket: "b".into(), after: None, limit: 100, now_ms: 45, day_ms: 10 };
    let results = apply_all(&mut conn, 20, &[step]);
    assert_eq!(results, [CommandResult::Lifecycle { expired: 3, aborted: 0, next: None }]);
    let left: Vec<(String, String)> = conn
        .prepare("SELECT CAST(key AS TEXT), etag FROM versions WHERE NOT delete_marker ORDER BY key, seq DESC")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let left: Vec<(&str, &str)> = left.iter().map(|(k, e)| (k.as_str(), e.as_str())).collect();
    assert_eq!(left, [("gone", "\"0\""), ("k", "\"20\"")], "the newest noncurrent versions are kept");
    let markers: i64 = conn.query_row("SELECT COUNT(*) FROM versions WHERE delete_marker", [], |r| r.get(0)).unwrap();
    assert_eq!(markers, 1, "gone's marker stays; lone's is removed");
    // With every noncurrent version past its days, gone's version goes, then its marker.
    let step = Command::ApplyLifecycle { bucket: "b".into(), after: None, limit: 100, now_ms: 45, day_ms: 10 };
    let rules = vec![
        LifecycleRule { id: "all".into(), enabled: true, noncurrent_days: Some(1), ..Default::default() },
        LifecycleRule {
            id: "m".into(),
            enabled: true,
            expiration: Some(Expiration::ExpiredObjectDeleteMarker),
            ..Default::default()
        },
    ];
    let set = Command::SetBucketLifecycle { bucket: "b".into(), rules: Some(rules) };
    let results = apply_all(&mut conn, 30, &[set, step]);
    assert_eq!(results[1], CommandResult::Lifecycle { expired: 3, aborted: 0, next: None });
    let versions: i64 = conn.query_row("SELECT COUNT(*) FROM versions", [], |r| r.get(0)).unwrap();
    assert_eq!(versions, 0);
    assert!(load_manifest(&conn, "b", "k").unwrap().is_some(), "the current object is not noncurrent");
    let held: i64 = conn.query_row("SELECT COUNT(*) FROM objects", [], |r| r.get(0)).unwrap();
    assert_eq!(held, 1);
}

/// A node that lost its disk comes back with a new id at the same address:
/// the old id is forgotten at once (its chunks queued for new copies), so
/// no leader can take the new node for the old one and act on it under the
/// old id (in the fault matrix, a new leader thought the old id alive for
/// its first seconds, placed writes on it and collected the new node's
/// copies as the old one's strays).
#[test]
fn a_node_registering_at_another_ids_address_takes_its_place() {
    let mut conn = schema::in_memory();
    let x = jadfs_common::ChunkId::of(b"x");
    let node = |id, addr: &str| {
        let mut node = crate::nodes::test_node(id, "z", 100, 100, NodeState::Alive);
        node.addr = addr.into();
        Command::RegisterNode { node }
    };
    apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            node(1, "storage1:9200"),
            node(2, "storage2:9200"),
            one_chunk_object("k", x, vec![1, 2], None),
            node(3, "storage1:9200"),
        ],
    );
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM nodes ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, [2, 3], "the old id at storage1 is forgotten");
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &x).unwrap(), vec![2]);
    let queued: i64 = conn.query_row("SELECT COUNT(*) FROM repairs", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 1, "its chunk waits for a new copy");
    // The same node registering again (a restart) changes nothing.
    apply_all(&mut conn, 10, &[node(3, "storage1:9200")]);
    assert_eq!(crate::state::rows::chunk_nodes(&conn, &x).unwrap(), vec![2]);
}

/// Object Lock's rules, as the state machine keeps them whatever asks.
#[test]
fn retention_only_lengthens_without_the_bypass_and_a_lock_keeps_the_version() {
    use jadfs_common::{LockMode, Retention};
    let mut conn = schema::in_memory();
    let put = |key: &str| put_inline(key, 0, "e", &[]);
    let retain = |key: &str, mode, until_ms, bypass| Command::SetRetention {
        bucket: "b".into(),
        key: key.into(),
        version_id: None,
        retention: Some(Retention { mode, until_ms }),
        bypass_governance: bypass,
        now_ms: 10,
    };
    let r = apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: true },
            Command::SetBucketVersioning { bucket: "b".into(), versioning: Versioning::Suspended },
            put("c"),
            put("g"),
            retain("c", LockMode::Compliance, 100, false),
            retain("g", LockMode::Governance, 100, false),
            retain("c", LockMode::Compliance, 200, false),
            retain("c", LockMode::Compliance, 150, true),
            retain("c", LockMode::Governance, 300, true),
            retain("g", LockMode::Compliance, 100, false),
            retain("g", LockMode::Governance, 50, false),
            retain("g", LockMode::Governance, 50, true),
        ],
    );
    let locked = |r: &CommandResult| matches!(r, CommandResult::Failed(MetaError::ObjectLocked(_)));
    assert!(matches!(r[1], CommandResult::Failed(MetaError::InvalidBucketState(_))), "no suspending with a lock");
    assert_eq!(r[4..7], [CommandResult::Done, CommandResult::Done, CommandResult::Done], "set, set, lengthened");
    assert!(locked(&r[7]) && locked(&r[8]), "compliance is never shortened nor weakened, bypass or not");
    assert!(locked(&r[9]) && locked(&r[10]), "governance: no mode change or shortening without the bypass");
    assert_eq!(r[11], CommandResult::Done, "with it, shortened");
    let id = |key: &str| load_manifest(&conn, "b", key).unwrap().unwrap().version_id.unwrap();
    let (c, g) = (id("c"), id("g"));
    let delete = |key: &str, id: &str, bypass| Command::DeleteObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: Some(id.into()),
        now_ms: 10,
        bypass_governance: bypass,
        condition: None,
    };
    let hold = |on| Command::SetLegalHold { bucket: "b".into(), key: "g".into(), version_id: None, on };
    let r = apply_all(
        &mut conn,
        20,
        &[
            delete("c", &c, true),
            delete("g", &g, false),
            hold(true),
            delete("g", &g, true),
            hold(false),
            delete("g", &g, true),
        ],
    );
    assert!(locked(&r[0]) && locked(&r[1]) && locked(&r[3]), "{r:?}");
    assert_eq!(r[5], CommandResult::Version { version_id: Some(g), delete_marker: false }, "governance bypassed");
    // At its date, compliance lets go.
    let expired = Command::DeleteObject {
        bucket: "b".into(),
        key: "c".into(),
        version_id: Some(c),
        now_ms: 200,
        bypass_governance: false,
        condition: None,
    };
    assert!(!locked(&apply_all(&mut conn, 30, &[expired])[0]));
}

#[test]
fn a_copy_sharing_chunks_for_their_encryption_is_refused_once_the_source_is_encrypted_otherwise() {
    let mut conn = schema::in_memory();
    let copy = |expected: Option<jadfs_common::sse::SseMode>| Command::CopyObject {
        src_bucket: "b".into(),
        src_key: "src".into(),
        dst_bucket: "b".into(),
        dst_key: "dst".into(),
        src_version: None,
        metadata: None,
        last_modified_ms: 1,
        tags: None,
        retention: None,
        legal_hold: false,
        source_encryption: Some(ExpectedEncryption { mode: expected }),
    };
    let kms = jadfs_common::sse::SseMode::Kms { key_id: "k1".into() };
    let r = apply_all(
        &mut conn,
        1,
        &[
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
            put_inline("src", 0, "e", &[]),
            // The gateway read an SSE-KMS source; a plain one replaced it.
            copy(Some(kms)),
            copy(None),
        ],
    );
    assert_eq!(r[2], CommandResult::Failed(MetaError::PreconditionFailed));
    assert!(matches!(r[3], CommandResult::Object(_)), "{:?}", r[3]);
}
