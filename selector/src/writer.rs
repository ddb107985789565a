//! The write path: batch operations into Raft entries, commit them on the
//! leader, forward them from followers.
//!
//! Callers [`submit`] operations; one task gathers whatever is queued (up
//! to `max_batch` operations) into one [`Command`], so a join storm costs
//! one log entry and one fsync per batch rather than per join. Up to
//! [`MAX_IN_FLIGHT`] batches are in flight at once. A follower forwards
//! the batch to the leader's internal `/raft/v1/write`; the leader stamps
//! the time. Every operation is idempotent, so a batch retried after a
//! lost answer (leader killed mid-write) changes nothing twice.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::node::{Shared, unix_ms};
use crate::raft::CallError;
use crate::state::{Command, Op, OpResult};

/// Batches in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Give up on a batch after this long without a leader that takes it.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Internal path of forwarded writes.
pub const WRITE_PATH: &str = "/raft/v1/write";

/// Why operations were not committed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WriteError {
    /// No leader took the batch before the deadline.
    #[error("no Raft leader accepted the write within {0:?}")]
    NoLeader(Duration),
    /// This node is cut off from a majority: try another selector.
    #[error("{0}")]
    NoQuorum(String),
    /// This node is not the leader (answer to a forwarded write).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's selector id, when known.
        leader: Option<String>,
    },
    /// Raft failed (shutting down, storage error).
    #[error("raft: {0}")]
    Raft(String),
}

/// One caller's operations and where to send their results.
pub struct WriteReq {
    ops: Vec<Op>,
    /// Commit only if this node leads (a batch forwarded by a follower):
    /// never forward it again.
    local_only: bool,
    reply: oneshot::Sender<Result<Vec<OpResult>, WriteError>>,
}

/// Queues `ops` and waits for their results. With `local_only`, the
/// operations are committed only if this node is the leader (otherwise
/// [`WriteError::NotLeader`]); forwarded batches use it so that they merge
/// with the leader's own writes but are never forwarded twice.
pub async fn submit(
    queue: &mpsc::Sender<WriteReq>,
    ops: Vec<Op>,
    local_only: bool,
) -> Result<Vec<OpResult>, WriteError> {
    let (reply, rx) = oneshot::channel();
    queue
        .send(WriteReq {
            ops,
            local_only,
            reply,
        })
        .await
        .map_err(|_| WriteError::Raft("writer stopped".into()))?;
    rx.await
        .map_err(|_| WriteError::Raft("writer dropped the request".into()))?
}

/// The batching loop (one per node).
pub async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<WriteReq>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Closed only when the node stops.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        // Weighed by what an entry carries, not by operations: a report
        // of 1,000 participants is one operation and 1,000 records.
        let mut n = weight(&batch[0].ops);
        while n < shared.cfg.max_batch {
            match rx.try_recv() {
                Ok(r) => {
                    n += weight(&r.ops);
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            commit_batch(&shared, batch).await;
            drop(permit);
        });
    }
}

/// How much of a Raft entry `ops` take: participant records, at least one
/// per operation.
fn weight(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Joined { participants, .. } | Op::Left { participants, .. } => {
                participants.len().max(1)
            }
            _ => 1,
        })
        .sum()
}

async fn commit_batch(shared: &Shared, batch: Vec<WriteReq>) {
    if shared.is_leader() {
        let ops: Vec<Op> = batch.iter().flat_map(|r| r.ops.iter().cloned()).collect();
        match commit_local(shared, ops).await {
            Ok(results) => return distribute(batch, results),
            Err(WriteError::NotLeader { .. }) => {}
            Err(e) => {
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
                return;
            }
        }
    }
    // Not (or no longer) the leader: forward what may be forwarded.
    let (local, forwardable): (Vec<WriteReq>, Vec<WriteReq>) =
        batch.into_iter().partition(|r| r.local_only);
    let leader = shared.leader_node().map(|(_, n)| n.id);
    for r in local {
        let _ = r.reply.send(Err(WriteError::NotLeader {
            leader: leader.clone(),
        }));
    }
    if forwardable.is_empty() {
        return;
    }
    let ops: Vec<Op> = forwardable
        .iter()
        .flat_map(|r| r.ops.iter().cloned())
        .collect();
    match propose(shared, ops).await {
        Ok(results) => distribute(forwardable, results),
        Err(e) => {
            for r in forwardable {
                let _ = r.reply.send(Err(e.clone()));
            }
        }
    }
}

fn distribute(batch: Vec<WriteReq>, results: Vec<OpResult>) {
    let n: usize = batch.iter().map(|r| r.ops.len()).sum();
    // apply() returns one result per operation: a mismatch is a bug.
    assert_eq!(results.len(), n, "one result per operation");
    let mut it = results.into_iter();
    for r in batch {
        let len = r.ops.len();
        let _ = r.reply.send(Ok(it.by_ref().take(len).collect()));
    }
}

/// Commits `ops` on this node, which must be the leader; stamps the time.
pub async fn commit_local(shared: &Shared, ops: Vec<Op>) -> Result<Vec<OpResult>, WriteError> {
    // A placement chosen on another node, or before a failover, may name
    // an edge that has fallen silent since: the leader refuses it here
    // (the caller places again elsewhere), so nothing is committed onto
    // an edge the leader judges dead.
    let now = std::time::Instant::now();
    let refused: Vec<Option<OpResult>> = {
        let soft = shared.soft();
        ops.iter()
            .map(|op| match op {
                Op::Join { edge, .. } if !soft.is_healthy(edge, now) => Some(OpResult::Rejected(
                    crate::state::ApplyError::EdgeUnhealthy(edge.clone()),
                )),
                _ => None,
            })
            .collect()
    };
    if refused.iter().any(Option::is_some) {
        let kept: Vec<Op> = ops
            .into_iter()
            .zip(&refused)
            .filter(|(_, r)| r.is_none())
            .map(|(op, _)| op)
            .collect();
        let mut committed = if kept.is_empty() {
            Vec::new()
        } else {
            commit_checked(shared, kept).await?
        }
        .into_iter();
        return Ok(refused
            .into_iter()
            .map(|r| r.unwrap_or_else(|| committed.next().expect("one result per committed op")))
            .collect());
    }
    commit_checked(shared, ops).await
}

/// Commits `ops` as they are.
async fn commit_checked(shared: &Shared, ops: Vec<Op>) -> Result<Vec<OpResult>, WriteError> {
    let n = ops.len() as u64;
    let cmd = Command {
        now_ms: unix_ms(SystemTime::now()),
        ops,
    };
    // A leader cut off from its majority never commits: give up rather than
    // hold the batch (and its callers) forever. Operations are idempotent,
    // so one that commits after all is harmless.
    let started = std::time::Instant::now();
    let write = shared.raft.client_write(cmd);
    tokio::pin!(write);
    let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
    let res = loop {
        tokio::select! {
            r = &mut write => break r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(why) = shared.quorum_unreachable() {
                    return Err(WriteError::NoQuorum(why));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(WriteError::NoLeader(WRITE_DEADLINE));
                }
            }
        }
    };
    match res {
        Ok(resp) => {
            shared
                .metrics
                .commit_duration
                .observe(started.elapsed().as_secs_f64());
            shared.metrics.write_batches.inc();
            shared.metrics.write_ops.inc_by(n);
            Ok(resp.data.results)
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(WriteError::NotLeader {
                leader: f.leader_node.map(|n| n.id),
            })
        }
        Err(e) => Err(WriteError::Raft(e.to_string())),
    }
}

/// Commits on the leader, wherever it is, retrying through elections
/// until [`WRITE_DEADLINE`].
async fn propose(shared: &Shared, ops: Vec<Op>) -> Result<Vec<OpResult>, WriteError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    let mut rx = shared.raft.metrics();
    loop {
        if start.elapsed() > WRITE_DEADLINE {
            return Err(WriteError::NoLeader(WRITE_DEADLINE));
        }
        if let Some(why) = shared.quorum_unreachable() {
            return Err(WriteError::NoQuorum(why));
        }
        let attempt = if shared.is_leader() {
            match commit_local(shared, ops.clone()).await {
                Err(WriteError::NotLeader { .. }) => None,
                other => Some(other),
            }
        } else if let Some((_, node)) = shared.leader_node() {
            // A forward into a partition hangs until its time-out: give up
            // as soon as this node knows it is cut off.
            let fwd = forward(shared, &node, &ops);
            tokio::pin!(fwd);
            loop {
                tokio::select! {
                    r = &mut fwd => break r,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if let Some(why) = shared.quorum_unreachable() {
                            return Err(WriteError::NoQuorum(why));
                        }
                    }
                }
            }
        } else {
            None
        };
        match attempt {
            Some(Ok(r)) => return Ok(r),
            Some(Err(e @ WriteError::Raft(_))) => return Err(e),
            _ => {}
        }
        // Wait for a leader change or a short pause, whichever first.
        let _ = tokio::time::timeout(pause, rx.changed()).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `Some(result)` when the leader answered; `None` to retry.
async fn forward(
    shared: &Shared,
    leader: &crate::raft::SelectorNode,
    ops: &[Op],
) -> Option<Result<Vec<OpResult>, WriteError>> {
    let client = match shared.peer(leader) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(leader = %leader, error = %e, "no client for the leader");
            return None;
        }
    };
    shared.metrics.forwarded_batches.inc();
    match client
        .post::<_, Vec<OpResult>>(WRITE_PATH, ops, Duration::from_secs(5))
        .await
    {
        Ok(r) => Some(Ok(r)),
        Err(CallError::Status { status, body }) if status == 421 || status == 503 => {
            tracing::debug!(leader = %leader, %body, "leader moved");
            None
        }
        Err(e) => {
            tracing::debug!(leader = %leader, error = %e, "forwarding failed");
            None
        }
    }
}
