//! Listing keys: one page under a prefix, with keys folded into common
//! prefixes at a delimiter, in O(page) whatever the bucket holds.

use rusqlite::{params, Connection};

use jadfs_common::ETag;

use crate::api::{ListObjectsQuery, ListPage, ObjectEntry};

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
            let folded = delimiter.and_then(|d| {
                let rest = &row.key[prefix.len()..];
                find(rest, d).map(|at| row.key[..prefix.len() + at + d.len()].to_vec())
            });
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

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
