//! Pins are leases. A write (a gateway's PUT, a repair, a move) pins the
//! chunks it puts on nodes for a short lease and renews it while it runs;
//! a writer that dies leaves pins that lapse within a lease, instead of
//! keeping trims and moves of those chunks waiting for an hour. Leases are
//! timed by the leader's clock ([`Command::start_leases`]), so a writer
//! whose clock is off does not shorten or stretch them. A pin that lapsed
//! under a write that still runs costs only that write: its commit is
//! refused, nothing it did not commit is kept.

use std::future::Future;
use std::time::Duration;

use crate::api::{Command, CommandResult, MetaError};

/// How long a pin holds unless renewed.
pub const PIN_LEASE: Duration = Duration::from_secs(120);
const LEASE_MS: u64 = PIN_LEASE.as_millis() as u64;
/// How often a write under way renews its pins: several renewals fit in a
/// lease, so one lost to a leader change does not end it.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// A pin of `chunk` on `nodes` for the write `write_id`, for one lease.
pub fn pin(write_id: u64, chunk: jadfs_common::ChunkId, nodes: Vec<jadfs_common::NodeId>) -> Command {
    Command::Pin { write_id, chunk, nodes, expires_ms: 0, lease_ms: LEASE_MS }
}

/// Runs `work`, renewing the pins of `write_id` through `write` every
/// [`RENEW_EVERY`] until it ends.
pub async fn renewing<T, W, F>(write_id: u64, write: W, work: impl Future<Output = T>) -> T
where
    W: Fn(Command) -> F,
    F: Future<Output = Result<CommandResult, MetaError>>,
{
    let renew = async {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            ticks.tick().await;
            let renewal = Command::RenewPins { write_id, expires_ms: 0, lease_ms: LEASE_MS };
            if let Err(e) = write(renewal).await {
                tracing::warn!(write_id, error = %e, "could not renew a write's pins; the next tick tries again");
            }
        }
    };
    tokio::select! {
        done = work => done,
        never = renew => never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_leader_times_leases_and_leaves_other_commands_alone() {
        let mut batch = Command::Batch(vec![
            pin(1, jadfs_common::ChunkId::of(b"x"), vec![2]),
            Command::RenewPins { write_id: 1, expires_ms: 0, lease_ms: 5 },
            Command::Unpin { write_id: 1 },
        ]);
        batch.start_leases(1000);
        let Command::Batch(commands) = batch else { unreachable!() };
        assert!(matches!(commands[0], Command::Pin { expires_ms: 121_000, .. }));
        assert!(matches!(commands[1], Command::RenewPins { expires_ms: 1005, .. }));
        assert_eq!(commands[2], Command::Unpin { write_id: 1 });

        // A pin from before leases keeps the expiry it was sent with.
        let mut old = Command::Pin {
            write_id: 1,
            chunk: jadfs_common::ChunkId::of(b"x"),
            nodes: vec![],
            expires_ms: 7,
            lease_ms: 0,
        };
        old.start_leases(1000);
        assert!(matches!(old, Command::Pin { expires_ms: 7, .. }));
        let mut huge = Command::RenewPins { write_id: 1, expires_ms: 0, lease_ms: u64::MAX };
        huge.start_leases(1000);
        assert!(matches!(huge, Command::RenewPins { expires_ms: i64::MAX, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_under_way_renews_its_pins_until_it_ends() {
        let sent = Mutex::new(Vec::new());
        let write = |c: Command| {
            sent.lock().unwrap().push(c);
            async { Ok(CommandResult::Done) }
        };
        let work = tokio::time::sleep(RENEW_EVERY * 3 + Duration::from_secs(1));
        renewing(9, write, work).await;
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|c| matches!(c, Command::RenewPins { write_id: 9, .. })));
    }
}
