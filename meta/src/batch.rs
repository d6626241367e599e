//! Group commit for metadata writes. Commands that arrive while a write is
//! being committed wait, and then go through Raft together as one
//! [`Command::Batch`] entry: one log append and one fsync for all of them,
//! one apply transaction. A lone command goes through at once, so a quiet
//! cluster sees no added latency. Each command still gets its own result,
//! and a failing command (say, a bucket that does not exist) fails alone.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::api::{Command, CommandResult, MetaError, Raft};

/// At most this many commands share one log entry (a PUT's command is a
/// manifest, a few hundred bytes, or a few KiB with an inline object).
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<CommandResult, MetaError>>;

/// How long a Raft write may go unanswered before its commands are
/// answered unavailable. Batches commit one after another, so a write
/// whose answer never came would hold up every later one: the meta node
/// would keep leading while refusing every write. A command may still
/// commit after this; its client (who gives up on an attempt after 5 s
/// anyway) retries under the same request id and gets its result.
pub(crate) const RAFT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `raft.client_write(command)`, given [`RAFT_WRITE_TIMEOUT`] at most.
pub(crate) async fn client_write(raft: &Raft, command: Command) -> Result<CommandResult, MetaError> {
    match tokio::time::timeout(RAFT_WRITE_TIMEOUT, raft.client_write(command)).await {
        Ok(Ok(response)) => Ok(response.data),
        Ok(Err(e)) => Err(MetaError::from_raft(&e)),
        Err(_) => {
            tracing::error!("a Raft write was not answered in {RAFT_WRITE_TIMEOUT:?}; answering it unavailable");
            crate::metrics::raft_write_timed_out();
            Err(MetaError::Unavailable(format!("the write was not committed within {RAFT_WRITE_TIMEOUT:?}")))
        }
    }
}

#[derive(Clone)]
pub struct WriteBatcher {
    queue: mpsc::Sender<(Command, Reply)>,
}

impl WriteBatcher {
    /// Starts the task that commits queued commands through `raft`.
    pub fn start(raft: Raft) -> WriteBatcher {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(commit_batches(raft, rx));
        WriteBatcher { queue }
    }

    /// Commits `command` (with whatever else is waiting) and returns its result.
    pub async fn write(&self, command: Command) -> Result<CommandResult, MetaError> {
        let (reply, result) = oneshot::channel();
        let stopped = || MetaError::Unavailable("the meta node is shutting down".into());
        self.queue.send((command, reply)).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn commit_batches(raft: Raft, mut rx: mpsc::Receiver<(Command, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<Command>, Vec<Reply>) = waiting.into_iter().unzip();
        let count = commands.len();
        let command = if count == 1 { commands.into_iter().next().expect("one") } else { Command::Batch(commands) };
        let results = match client_write(&raft, command).await {
            Ok(result) if count == 1 => vec![Ok(result)],
            Ok(CommandResult::Batch(results)) if results.len() == count => results.into_iter().map(Ok).collect(),
            Ok(other) => vec![Err(MetaError::Internal(format!("a batch was answered with {other:?}"))); count],
            Err(e) => vec![Err(e); count],
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
