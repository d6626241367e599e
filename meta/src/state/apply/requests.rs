//! Client writes applied once. A gateway sends each write under a request
//! id and sends it again, under the same id, when the answer did not come;
//! the first copy may have been committed all the same (a leader that lost
//! its leadership after replicating it). The first copy applied records its
//! id and result; a later one answers that result and changes nothing.

use rusqlite::{params, OptionalExtension};

use super::{Applier, Outcome};
use crate::api::Command;
use crate::state::rows::{from_json, to_json};

/// How many log entries a request id is remembered for: far longer than a
/// client retries (seconds), at any write rate this node can commit.
const REMEMBERED_FOR: u64 = 200_000;

impl Applier<'_> {
    pub(super) fn once(&self, request: u64, command: &Command) -> Outcome {
        let earlier: Option<Vec<u8>> = self
            .tx
            .query_row("SELECT result FROM requests WHERE id = ?1", [request as i64], |r| r.get(0))
            .optional()?;
        if let Some(earlier) = earlier {
            return Ok(from_json(&earlier)?);
        }
        // A refused command changed nothing: a copy applied later may take
        // effect then, once, as if the first had never arrived.
        let result = self.dispatch(command)?;
        let recorded = to_json(&result)?;
        self.tx.execute(
            "INSERT INTO requests (id, log_index, result) VALUES (?1, ?2, ?3)",
            params![request as i64, self.log_index as i64, recorded],
        )?;
        self.tx.execute(
            "DELETE FROM requests WHERE log_index < ?1",
            [self.log_index.saturating_sub(REMEMBERED_FOR) as i64],
        )?;
        Ok(result)
    }
}
