//! Start-up reconciliation: the chunk folders are the truth, the index a
//! cache of them.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use jadfs_common::node::ReconcileReport;
use jadfs_common::{now_ms, ChunkId};

use super::read::hash_file;
use super::ChunkStore;
use crate::error::StoreError;
use crate::fs::fsync_dir;

impl ChunkStore {
    /// Compares the files with the index: removes temporary files of
    /// interrupted puts, indexes chunk files whose bytes match their name,
    /// quarantines anything else, and notes lost the copies whose file is
    /// gone (dropping their rows).
    pub fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        for entry in fs::read_dir(&self.tmp_dir)? {
            fs::remove_file(entry?.path())?;
            report.removed_temp_files += 1;
        }
        fsync_dir(&self.tmp_dir)?;

        let mut on_disk = HashSet::new();
        for level1 in fs::read_dir(&self.chunks_dir)? {
            let level1 = level1?.path();
            if !level1.is_dir() {
                self.quarantine(&level1, &mut report)?;
                continue;
            }
            for level2 in fs::read_dir(&level1)? {
                let level2 = level2?.path();
                if !level2.is_dir() {
                    self.quarantine(&level2, &mut report)?;
                    continue;
                }
                for file in fs::read_dir(&level2)? {
                    let path = file?.path();
                    let parsed = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<ChunkId>().ok());
                    match parsed {
                        Some(id) if self.chunk_path(&id) == path => {
                            on_disk.insert(id);
                        }
                        _ => self.quarantine(&path, &mut report)?,
                    }
                }
            }
        }

        let mut indexed = HashSet::new();
        let mut after = None;
        loop {
            let page = self.list(after.as_ref(), 10_000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            indexed.extend(page.into_iter().map(|c| c.id));
        }

        // Copies the index promises but that are gone: lost, for meta to re-make.
        for id in indexed.difference(&on_disk) {
            self.lose(id, None)?;
            report.missing.push(*id);
        }
        for id in on_disk.difference(&indexed) {
            let path = self.chunk_path(id);
            let found = hash_file(&path)?;
            if found.id == *id {
                self.index().insert(id, found.size, found.crc32c, &found.blocks, now_ms())?;
                report.adopted.push(*id);
            } else {
                self.quarantine(&path, &mut report)?;
            }
        }
        // Chunks indexed before block checksums were kept get them, from a
        // file that still matches its id; one that does not is lost.
        let unchecked = self.index().without_blocks()?;
        for id in unchecked {
            let found = hash_file(&self.chunk_path(&id))?;
            if found.id == id {
                self.index().set_blocks(&id, found.crc32c, &found.blocks)?;
            } else {
                self.lose(&id, None)?;
                report.corrupt.push(id);
            }
        }
        report.missing.sort();
        report.adopted.sort();
        report.corrupt.sort();
        Ok(report)
    }

    fn quarantine(&self, path: &Path, report: &mut ReconcileReport) -> Result<(), StoreError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = self.quarantine_dir.join(format!("{}-{}", jadfs_common::random_u64(), name));
        fs::rename(path, &target)?;
        report.quarantined.push(name);
        Ok(())
    }
}
