//! The state machine store: [`SelectorState`] in memory, snapshots in redb.
//!
//! Applying an entry only changes memory; the state reaches disk in
//! snapshots (table `snapshot`, built every `snapshot_logs` entries and on
//! demand). After a restart the node loads the latest snapshot and openraft
//! re-applies the log from there up to the saved commit index, so nothing
//! acknowledged is lost.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{NodeId, SelectorNode, TypeConfig};
use crate::state::{Response, SelectorState};

const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
const CURRENT: &str = "current";

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(SNAPSHOT)?;
    Ok(())
}

/// What has been applied, shared with the node for local reads.
#[derive(Debug, Default)]
pub struct Applied {
    /// The replicated state.
    pub state: SelectorState,
    /// The last log entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The membership as of `last_applied`.
    pub membership: StoredMembership<NodeId, SelectorNode>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, SelectorNode>,
    /// JSON of [`SelectorState`].
    data: Vec<u8>,
}

/// The state machine half of the Raft storage (cheap to clone).
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    applied: Arc<RwLock<Applied>>,
    snapshot_seq: Arc<std::sync::atomic::AtomicU64>,
}

type SResult<T> = Result<T, StorageError<NodeId>>;

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

impl StateStore {
    /// Opens the store, loading the latest snapshot if there is one.
    pub fn open(db: Arc<Database>) -> SResult<Self> {
        let store = Self {
            db,
            applied: Arc::default(),
            snapshot_seq: Arc::default(),
        };
        if let Some(snap) = store.read_snapshot()? {
            let mut state: SelectorState = serde_json::from_slice(&snap.data).map_err(sm_err)?;
            state.rebuild_indexes();
            let mut a = store.write();
            a.state = state;
            a.last_applied = snap.meta.last_log_id;
            a.membership = snap.meta.last_membership;
        }
        Ok(store)
    }

    /// Read access to the applied state.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        // A poisoned lock means a panic while applying: a bug.
        self.applied.read().expect("state lock poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.applied.write().expect("state lock poisoned")
    }

    fn read_snapshot(&self) -> SResult<Option<StoredSnapshot>> {
        let tx = self.db.begin_read().map_err(sm_err)?;
        let t = tx.open_table(SNAPSHOT).map_err(sm_err)?;
        let Some(v) = t.get(CURRENT).map_err(sm_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value()).map(Some).map_err(sm_err)
    }

    async fn save_snapshot(&self, snap: &StoredSnapshot) -> SResult<()> {
        let bytes = serde_json::to_vec(snap).map_err(snap_err)?;
        let db = self.db.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(SNAPSHOT)?.insert(CURRENT, bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await;
        match res {
            Ok(r) => r.map_err(snap_err),
            // The closure does not panic on any input; a panic there is a bug.
            Err(e) => panic!("redb task failed: {e}"),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateStore {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let (data, meta) = {
            let a = self.read();
            let data = serde_json::to_vec(&a.state).map_err(snap_err)?;
            let seq = self
                .snapshot_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let snapshot_id = match a.last_applied {
                Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
                None => format!("none-{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: a.last_applied,
                last_membership: a.membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.save_snapshot(&stored).await?;
        tracing::debug!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> SResult<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, SelectorNode>,
    )> {
        let a = self.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.write();
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Response::default()),
                EntryPayload::Normal(cmd) => out.push(a.state.apply(&cmd)),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Response::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, SelectorNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        let data = snapshot.into_inner();
        let mut state: SelectorState = serde_json::from_slice(&data).map_err(sm_err)?;
        state.rebuild_indexes();
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        let mut a = self.write();
        a.state = state;
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.read_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
