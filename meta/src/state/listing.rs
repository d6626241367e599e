//! Listing keys: one page under a prefix, with keys folded into common
//! prefixes at a delimiter, in O(page) whatever the bucket holds.

use rusqlite::{params, Connection, OptionalExtension};

use jadfs_common::ETag;

use crate::api::{ListObjectsQuery, ListPage, ListVersionsQuery, ObjectEntry, VersionEntry, VersionsPage};

/// The smallest byte string greater than every string starting with `prefix`
/// (None: no such bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

struct ObjectRow {
    key: Vec<u8>,
    size: i64,
    etag: String,
    last_modified_ms: i64,
}

/// Keys of `bucket` from `from` (inclusive or not) up to `to` (exclusive), in order.
fn scan(
    conn: &Connection,
    bucket: &str,
    from: &[u8],
    inclusive: bool,
    to: Option<&[u8]>,
    limit: usize,
) -> rusqlite::Result<Vec<ObjectRow>> {
    let sql = if inclusive {
        "SELECT key, size, etag, last_modified_ms FROM objects
         WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4"
    } else {
        "SELECT key, size, etag, last_modified_ms FROM objects
         WHERE bucket = ?1 AND key > ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![bucket, from, to, limit as i64], |r| {
        Ok(ObjectRow { key: r.get(0)?, size: r.get(1)?, etag: r.get(2)?, last_modified_ms: r.get(3)? })
    })?;
    rows.collect()
}

/// One page of keys under a prefix, folding keys that contain the delimiter
/// after the prefix into common prefixes. Each common prefix costs one
/// indexed seek, so a page costs O(page), whatever the bucket holds.
pub fn list_objects(conn: &Connection, q: &ListObjectsQuery) -> rusqlite::Result<ListPage> {
    let prefix = q.prefix.as_bytes();
    let upper = prefix_end(prefix);
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty()).map(str::as_bytes);

    // Start at the prefix, or after start-after when that is later.
    let start_after = q.start_after.as_deref().map(str::as_bytes);
    let (mut from, mut inclusive) = match start_after {
        Some(after) if after >= prefix => (after.to_vec(), false),
        _ => (prefix.to_vec(), true),
    };

    let mut page = ListPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let mut returned = 0;
    'scan: loop {
        let batch = scan(conn, &q.bucket, &from, inclusive, upper.as_deref(), q.max_keys - returned + 1)?;
        let exhausted = batch.len() < q.max_keys - returned + 1;
        for row in batch {
            if returned == q.max_keys {
                page.truncated = true;
                break 'scan;
            }
            let folded = fold(&row.key, prefix, delimiter);
            returned += 1;
            match folded {
                Some(common) => {
                    let Some(end) = prefix_end(&common) else { break 'scan };
                    from = end;
                    inclusive = true;
                    // A common prefix at or before start-after was returned
                    // by an earlier page: skip its keys without counting it.
                    if start_after.is_some_and(|after| common.as_slice() <= after) {
                        returned -= 1;
                        continue 'scan;
                    }
                    let common = String::from_utf8_lossy(&common).into_owned();
                    page.last = Some(common.clone());
                    page.common_prefixes.push(common);
                    continue 'scan;
                }
                None => {
                    let key = String::from_utf8_lossy(&row.key).into_owned();
                    page.last = Some(key.clone());
                    page.objects.push(ObjectEntry {
                        key,
                        size: row.size as u64,
                        etag: ETag::from_quoted(row.etag),
                        last_modified_ms: row.last_modified_ms,
                    });
                    from = row.key;
                    inclusive = false;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(page)
}

/// Where a versions listing goes on: the versions of `key` older than
/// `below` (the current object's rank is `CURRENT`), then the keys after it.
/// `below` None takes in all of `key`.
struct Cursor {
    key: Vec<u8>,
    below: Option<i64>,
}

/// The rank of a key's current object among its versions: above every `seq`.
const CURRENT: i64 = i64::MAX;

/// A version in the order of a versions listing: key, then newest first.
struct VersionRow {
    key: Vec<u8>,
    rank: i64,
    version_id: String,
    delete_marker: bool,
    size: i64,
    etag: String,
    last_modified_ms: i64,
}

/// The next `limit` versions from `at`, up to `to` (exclusive): current
/// objects and the rows of `versions` merged, each read by an index seek.
fn scan_versions(
    conn: &Connection,
    bucket: &str,
    at: &Cursor,
    to: Option<&[u8]>,
    limit: usize,
) -> rusqlite::Result<Vec<VersionRow>> {
    let current = |r: &rusqlite::Row| -> rusqlite::Result<VersionRow> {
        Ok(VersionRow {
            key: r.get(0)?,
            rank: CURRENT,
            version_id: r.get(4)?,
            delete_marker: false,
            size: r.get(1)?,
            etag: r.get(2)?,
            last_modified_ms: r.get(3)?,
        })
    };
    let older = |r: &rusqlite::Row| -> rusqlite::Result<VersionRow> {
        Ok(VersionRow {
            key: r.get(0)?,
            rank: r.get(1)?,
            version_id: r.get(2)?,
            delete_marker: r.get(3)?,
            size: r.get(4)?,
            etag: r.get(5)?,
            last_modified_ms: r.get(6)?,
        })
    };
    let n = limit as i64;
    let mut currents: Vec<VersionRow> = conn
        .prepare_cached(
            "SELECT key, size, etag, last_modified_ms, COALESCE(json_extract(manifest, '$.version_id'), 'null')
             FROM objects WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4",
        )?
        .query_map(params![bucket, at.key, to, n + 1], current)?
        .collect::<rusqlite::Result<_>>()?;
    // The cursor's own key's current object was listed unless all of it is wanted.
    if at.below.is_some() && currents.first().is_some_and(|c| c.key == at.key) {
        currents.remove(0);
    }
    const COLUMNS: &str = "key, seq, version_id, delete_marker, size, etag, last_modified_ms";
    let mut olders: Vec<VersionRow> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 AND seq < ?3 AND (?4 IS NULL OR key < ?4)
             ORDER BY seq DESC LIMIT ?5"
        ))?
        .query_map(params![bucket, at.key, at.below.unwrap_or(CURRENT), to, n], older)?
        .collect::<rusqlite::Result<_>>()?;
    olders.extend(
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE bucket = ?1 AND key > ?2 AND (?3 IS NULL OR key < ?3)
             ORDER BY key, seq DESC LIMIT ?4"
        ))?
        .query_map(params![bucket, at.key, to, n], older)?
        .collect::<rusqlite::Result<Vec<_>>>()?,
    );
    // Merge: by key, then the greater rank (the newer) first.
    let mut merged = Vec::with_capacity(limit);
    let (mut a, mut b) = (currents.drain(..).peekable(), olders.drain(..).peekable());
    while merged.len() < limit {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => (&x.key, std::cmp::Reverse(x.rank)) <= (&y.key, std::cmp::Reverse(y.rank)),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        merged.extend(if take_a { a.next() } else { b.next() });
    }
    Ok(merged)
}

/// Whether a delete marker (at `seq`) is its key's latest version.
fn marker_is_latest(conn: &Connection, bucket: &str, key: &[u8], seq: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2)
            AND NOT EXISTS (SELECT 1 FROM versions WHERE bucket = ?1 AND key = ?2 AND seq > ?3)",
    )?
    .query_row(params![bucket, key, seq], |r| r.get(0))
}

/// One page of every version and delete marker under a prefix, key by key
/// and newest first, folded into common prefixes at a delimiter as
/// [`list_objects`] folds keys: O(page) whatever the bucket holds.
pub fn list_versions(conn: &Connection, q: &ListVersionsQuery) -> rusqlite::Result<VersionsPage> {
    let prefix = q.prefix.as_bytes();
    let upper = prefix_end(prefix);
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty()).map(str::as_bytes);
    let key_marker = q.key_marker.as_deref().map(str::as_bytes).filter(|m| !m.is_empty());
    let mut at = match key_marker {
        Some(marker) if marker >= prefix => {
            // After the marker's version, or after all of the marker's key.
            let below = match q.version_marker.as_deref().filter(|v| !v.is_empty()) {
                Some(version) => version_rank(conn, &q.bucket, marker, version)?,
                None => i64::MIN,
            };
            Cursor { key: marker.to_vec(), below: Some(below) }
        }
        _ => Cursor { key: prefix.to_vec(), below: None },
    };
    let mut page = VersionsPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let mut returned = 0;
    'scan: loop {
        let want = q.max_keys - returned + 1;
        let batch = scan_versions(conn, &q.bucket, &at, upper.as_deref(), want)?;
        let exhausted = batch.len() < want;
        for row in batch {
            if returned == q.max_keys {
                page.truncated = true;
                break 'scan;
            }
            let folded = fold(&row.key, prefix, delimiter);
            returned += 1;
            if let Some(common) = folded {
                let Some(end) = prefix_end(&common) else { break 'scan };
                at = Cursor { key: end, below: None };
                if key_marker.is_some_and(|marker| common.as_slice() <= marker) {
                    returned -= 1;
                    continue 'scan;
                }
                let common = String::from_utf8_lossy(&common).into_owned();
                page.next_key_marker = Some(common.clone());
                page.next_version_marker = None;
                page.common_prefixes.push(common);
                continue 'scan;
            }
            let latest = match (row.rank, row.delete_marker) {
                (CURRENT, _) => true,
                (seq, true) => marker_is_latest(conn, &q.bucket, &row.key, seq)?,
                _ => false,
            };
            let key = String::from_utf8_lossy(&row.key).into_owned();
            page.next_key_marker = Some(key.clone());
            page.next_version_marker = Some(row.version_id.clone());
            page.versions.push(VersionEntry {
                key,
                version_id: row.version_id,
                latest,
                delete_marker: row.delete_marker,
                size: row.size.max(0) as u64,
                etag: ETag::from_quoted(row.etag),
                last_modified_ms: row.last_modified_ms,
            });
            at = Cursor { key: row.key, below: Some(row.rank) };
        }
        if exhausted {
            break;
        }
    }
    if !page.truncated {
        page.next_key_marker = None;
        page.next_version_marker = None;
    }
    Ok(page)
}

/// The rank of version `version_id` of `key`: the current object's, or its
/// `seq`. A version gone since the marker was given: after all of the key.
fn version_rank(conn: &Connection, bucket: &str, key: &[u8], version_id: &str) -> rusqlite::Result<i64> {
    let key = String::from_utf8_lossy(key);
    if let Some(current) = crate::state::rows::load_manifest(conn, bucket, &key)? {
        if current.version() == version_id {
            return Ok(CURRENT);
        }
    }
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3")?
        .query_row(params![bucket, key.as_bytes(), version_id], |r| r.get(0))
        .optional()?;
    Ok(seq.unwrap_or(i64::MIN))
}

/// The common prefix `key` folds into: up to the first delimiter after the
/// prefix, if there is one.
fn fold(key: &[u8], prefix: &[u8], delimiter: Option<&[u8]>) -> Option<Vec<u8>> {
    let d = delimiter?;
    find(&key[prefix.len()..], d).map(|at| key[..prefix.len() + at + d.len()].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::schema;

    fn object(conn: &Connection, key: &str) {
        conn.execute(
            "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, manifest) VALUES ('b', ?1, 1, 'e', 0, x'')",
            [key.as_bytes()],
        )
        .unwrap();
    }

    fn list(conn: &Connection, prefix: &str, delimiter: Option<&str>, max_keys: usize) -> Vec<String> {
        // Pages through everything and returns keys and prefixes in order.
        let mut out = Vec::new();
        let mut resume: Option<String> = None;
        loop {
            let mut q = ListObjectsQuery {
                bucket: "b".into(),
                prefix: prefix.into(),
                delimiter: delimiter.map(Into::into),
                max_keys,
                ..Default::default()
            };
            q.start_after = resume.clone();
            let page = list_objects(conn, &q).unwrap();
            let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
            entries.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
            entries.sort_by(|a, b| a.trim_end_matches('*').cmp(b.trim_end_matches('*')));
            out.extend(entries);
            if !page.truncated {
                return out;
            }
            resume = page.last;
        }
    }

    #[test]
    fn listing_pages_with_prefix_and_delimiter() {
        let conn = schema::in_memory();
        for key in
            ["a", "b/1", "b/2", "b/3/x", "c", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "z\u{ff}"]
        {
            object(&conn, key);
        }
        let everything =
            ["a", "b/1", "b/2", "b/3/x", "c", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "z\u{ff}"];
        for max_keys in [1, 2, 3, 1000] {
            assert_eq!(list(&conn, "", None, max_keys), everything, "max_keys {max_keys}");
            assert_eq!(list(&conn, "", Some("/"), max_keys), ["a", "b/*", "c", "photos/*", "z\u{ff}"]);
            assert_eq!(list(&conn, "b/", Some("/"), max_keys), ["b/1", "b/2", "b/3/*"]);
            assert_eq!(list(&conn, "photos/", Some("/"), max_keys), ["photos/2024/*", "photos/2025/*"]);
            assert_eq!(list(&conn, "photos/2024/", Some("/"), max_keys), ["photos/2024/a.jpg", "photos/2024/b.jpg"]);
            assert_eq!(list(&conn, "nothing", Some("/"), max_keys), Vec::<String>::new());
        }
    }

    /// What a listing must return, computed by brute force over sorted keys.
    fn model(keys: &[String], prefix: &str, delimiter: Option<&str>, start_after: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let entry = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|at| (d, at))) {
                Some((d, at)) => key[..prefix.len() + at + d.len()].to_string() + "*",
                None => key.clone(),
            };
            let name = entry.trim_end_matches('*');
            if start_after.is_some_and(|after| name <= after) || out.last() == Some(&entry) {
                continue;
            }
            out.push(entry);
        }
        out
    }

    #[test]
    fn listing_100k_keys_pages_correctly_for_every_combination() {
        let conn = schema::in_memory();
        let mut keys: Vec<String> = (0..100_000).map(|i| format!("dir{}/sub{}/file{i}", i % 100, i % 7)).collect();
        keys.extend(["top-level".to_string(), "dir1".to_string(), "dir1/".to_string()]);
        conn.execute_batch("BEGIN").unwrap();
        for key in &keys {
            object(&conn, key);
        }
        conn.execute_batch("COMMIT").unwrap();
        keys.sort();
        for (prefix, max_keys) in
            [("", 1000), ("dir1", 999), ("dir1/", 250), ("dir42/sub3/", 7), ("dir42/sub3/", 1), ("zzz", 5), ("top", 1)]
        {
            for delimiter in [None, Some("/"), Some("sub")] {
                for start_after in [None, Some("dir5"), Some("dir50/sub2/file1550")] {
                    let expected = model(&keys, prefix, delimiter, start_after);
                    let mut got = Vec::new();
                    let mut resume = start_after.map(str::to_string);
                    loop {
                        let q = ListObjectsQuery {
                            bucket: "b".into(),
                            prefix: prefix.into(),
                            delimiter: delimiter.map(Into::into),
                            start_after: resume.clone(),
                            max_keys,
                        };
                        let page = list_objects(&conn, &q).unwrap();
                        assert!(page.objects.len() + page.common_prefixes.len() <= max_keys);
                        let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
                        entries.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
                        entries.sort_by(|a, b| a.trim_end_matches('*').cmp(b.trim_end_matches('*')));
                        got.extend(entries);
                        if !page.truncated {
                            break;
                        }
                        resume = page.last;
                    }
                    assert_eq!(got, expected, "prefix {prefix:?} delimiter {delimiter:?} start-after {start_after:?}");
                }
            }
        }
    }

    /// One version of the brute-force model: key, version id, latest, delete marker.
    type Version = (String, String, bool, bool);

    /// 100,000 versions of 30,000 keys (current objects, noncurrent
    /// versions, delete markers, keys with only a marker), listed page by
    /// page for every combination of prefix, delimiter, page size and
    /// markers, against a model computed by brute force.
    #[test]
    fn listing_100k_versions_pages_correctly_for_every_combination() {
        let conn = schema::in_memory();
        let mut model: Vec<Version> = Vec::new();
        conn.execute_batch("BEGIN").unwrap();
        let mut seq = 0i64;
        let mut n = 0;
        let mut i = 0;
        while n < 100_000 {
            let key = format!("dir{}/sub{}/file{i}", i % 97, i % 5);
            let older = (i % 4) as i64;
            // Every 7th key's latest version is a delete marker.
            let marker_latest = i % 7 == 0;
            let mut versions: Vec<(i64, bool)> = (0..older).map(|_| (next(&mut seq), false)).collect();
            if marker_latest {
                versions.push((next(&mut seq), true));
            }
            for (seq, marker) in &versions {
                let id = format!("{seq:016x}");
                conn.execute(
                    "INSERT INTO versions (bucket, key, seq, version_id, delete_marker, size, etag, last_modified_ms, manifest)
                     VALUES ('b', ?1, ?2, ?3, ?4, 1, 'e', 0, x'')",
                    params![key.as_bytes(), seq, id, marker],
                )
                .unwrap();
            }
            let mut entries: Vec<Version> = Vec::new();
            if !marker_latest {
                let id = format!("{:016x}", next(&mut seq));
                let manifest = format!(
                    r#"{{"size":1,"etag":"e","last_modified_ms":0,"content_type":null,"chunks":[],"version_id":"{id}"}}"#
                );
                conn.execute(
                    "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, manifest) VALUES ('b', ?1, 1, 'e', 0, ?2)",
                    params![key.as_bytes(), manifest.as_bytes()],
                )
                .unwrap();
                entries.push((key.clone(), id, true, false));
            }
            for (j, (seq, marker)) in versions.iter().rev().enumerate() {
                entries.push((key.clone(), format!("{seq:016x}"), marker_latest && j == 0, *marker));
            }
            n += entries.len();
            model.extend(entries);
            i += 1;
        }
        conn.execute_batch("COMMIT").unwrap();
        model.sort_by(|a, b| a.0.cmp(&b.0));
        let marker_version = model[5000].1.clone();
        let marker_key = model[5000].0.clone();
        for (prefix, max_keys) in
            [("", 1000), ("dir1", 999), ("dir1/", 250), ("dir42/sub3/", 7), ("dir42/sub3/", 1), ("zzz", 5)]
        {
            for delimiter in [None, Some("/"), Some("sub")] {
                for start in
                    [None, Some((marker_key.clone(), None)), Some((marker_key.clone(), Some(marker_version.clone())))]
                {
                    let expected = model_page(&model, prefix, delimiter, start.as_ref());
                    let mut got = Vec::new();
                    let mut q = ListVersionsQuery {
                        bucket: "b".into(),
                        prefix: prefix.into(),
                        delimiter: delimiter.map(Into::into),
                        key_marker: start.as_ref().map(|s| s.0.clone()),
                        version_marker: start.as_ref().and_then(|s| s.1.clone()),
                        max_keys,
                    };
                    loop {
                        let page = list_versions(&conn, &q).unwrap();
                        assert!(page.versions.len() + page.common_prefixes.len() <= max_keys);
                        let mut entries: Vec<String> = page
                            .versions
                            .iter()
                            .map(|v| format!("{} {} {} {}", v.key, v.version_id, v.latest, v.delete_marker))
                            .collect();
                        entries.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
                        entries.sort_by(|a, b| entry_key(a).cmp(entry_key(b)));
                        got.extend(entries);
                        if !page.truncated {
                            break;
                        }
                        q.key_marker = page.next_key_marker;
                        q.version_marker = page.next_version_marker;
                    }
                    assert_eq!(got.len(), expected.len(), "prefix {prefix:?} delimiter {delimiter:?} start {start:?}");
                    assert!(got == expected, "prefix {prefix:?} delimiter {delimiter:?} start {start:?}");
                }
            }
        }
    }

    fn next(seq: &mut i64) -> i64 {
        *seq += 1;
        *seq
    }

    /// What a page's entries sort by: the key (or common prefix), then the
    /// listing's own order within a key (kept by a stable sort).
    fn entry_key(entry: &str) -> &str {
        entry.split(' ').next().unwrap().trim_end_matches('*')
    }

    fn model_page(
        model: &[Version],
        prefix: &str,
        delimiter: Option<&str>,
        start: Option<&(String, Option<String>)>,
    ) -> Vec<String> {
        // Skip up to the marker: all of its key, or up to and including its version.
        let from = match start {
            None => 0,
            Some((key, None)) => model.partition_point(|v| v.0.as_str() <= key.as_str()),
            Some((key, Some(version))) => model.iter().position(|v| &v.0 == key && &v.1 == version).unwrap() + 1,
        };
        let mut out: Vec<String> = Vec::new();
        for (key, id, latest, marker) in model[from..].iter().filter(|v| v.0.starts_with(prefix)) {
            match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|at| (d, at))) {
                Some((d, at)) => {
                    let common = format!("{}*", &key[..prefix.len() + at + d.len()]);
                    let skipped = start.is_some_and(|(k, _)| common.trim_end_matches('*') <= k.as_str());
                    if !skipped && out.last() != Some(&common) {
                        out.push(common);
                    }
                }
                None => out.push(format!("{key} {id} {latest} {marker}")),
            }
        }
        out
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
