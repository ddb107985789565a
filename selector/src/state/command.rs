//! What goes into the Raft log ([`Command`]) and what applying it returns
//! ([`Response`]).

use geomesh_core::agent::ParticipantRef;
use geomesh_core::{ConferenceId, EdgeId, GeoPoint, ParticipantId, RegionId};
use serde::{Deserialize, Serialize};

pub use super::machine::RecordingRecord;

/// One Raft log entry's payload: a batch of operations and the time the
/// leader stamped on it. Every node applies the batch with this `now_ms`,
/// so leases lapse at the same log position everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unix milliseconds, stamped by the leader when it proposed the entry.
    pub now_ms: u64,
    /// Applied in order; each gets one [`OpResult`].
    pub ops: Vec<Op>,
}

/// One replicated operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// An edge registers (or re-registers) itself.
    RegisterEdge {
        /// The edge (from its certificate).
        edge: EdgeId,
        /// Its region (from the topology).
        region: RegionId,
        /// Its region's location.
        location: GeoPoint,
        /// Participants at stress 1.0 (from the topology).
        capacity: u32,
        /// Base URL clients use.
        base_url: String,
        /// The edge process's boot id.
        boot_id: String,
        /// How long the registration lives without renewal.
        lease_ms: u64,
        /// The address GeoDNS answers with, for an edge that described
        /// itself (the topology's otherwise).
        #[serde(default)]
        public_ip: Option<std::net::IpAddr>,
        /// Not in the proposer's topology: registered from its own
        /// description; forgotten once its lease lapses.
        #[serde(default)]
        runtime: bool,
    },
    /// Start or stop draining an edge (an operator's decision).
    SetDraining {
        /// The edge.
        edge: EdgeId,
        /// New state.
        draining: bool,
        /// Also move its participants away.
        #[serde(default)]
        migrate: bool,
    },
    /// The edge process is shutting down: draining and migrating until it
    /// registers again with another boot id.
    Leave {
        /// The edge (from its certificate).
        edge: EdgeId,
        /// The leaving process.
        boot_id: String,
    },
    /// An operator removed the edge: its record and placements go, and the
    /// process with this boot id may not register again.
    RemoveEdge {
        /// The edge.
        edge: EdgeId,
    },
    /// Place a participant (idempotent by conference + participant).
    Join {
        /// The conference.
        conference: ConferenceId,
        /// The participant.
        participant: ParticipantId,
        /// The edge chosen by the strategy.
        edge: EdgeId,
        /// How long the placement lives until the edge confirms it.
        lease_ms: u64,
        /// Cap on edges per conference; `None` when the strategy
        /// deliberately went over it (`Reason::OverCap`).
        max_edges: Option<u32>,
        /// Move an existing placement only if it is still on this edge
        /// (the proposer saw it unhealthy or draining); without it an
        /// existing live placement is returned unchanged.
        reassign_from: Option<EdgeId>,
    },
    /// An edge reports participants that connected to it.
    Joined {
        /// The reporting edge (from its certificate).
        edge: EdgeId,
        /// Who connected.
        participants: Vec<ParticipantRef>,
    },
    /// An edge reports participants that left it.
    Left {
        /// The reporting edge (from its certificate).
        edge: EdgeId,
        /// Who left.
        participants: Vec<ParticipantRef>,
    },
    /// Record a conference on a recorder (an operator's decision; the
    /// proposer chose the recorder). Idempotent: a conference being
    /// recorded keeps its recording.
    StartRecording {
        /// The conference.
        conference: ConferenceId,
        /// The recording's id.
        recording: String,
        /// The recorder chosen.
        recorder: EdgeId,
        /// The video layer policy: at most this tall (0: the top layer).
        #[serde(default)]
        max_height: u16,
    },
    /// Stop recording a conference.
    StopRecording {
        /// The conference.
        conference: ConferenceId,
    },
    /// Move a recording to another recorder (its recorder went silent):
    /// only if it is still on `from`, so a retried or raced move does
    /// nothing. The new recorder writes a new part that continues the last.
    MoveRecording {
        /// The conference.
        conference: ConferenceId,
        /// Where the proposer saw it.
        from: EdgeId,
        /// The new recorder.
        to: EdgeId,
    },
    /// Periodic upkeep by the leader: renew the leases of edges it hears
    /// heartbeats from, then release lapsed placements, the participants
    /// of edges whose lease lapsed and of edges the leader finds unhealthy.
    Maintain {
        /// Edges heard from recently.
        live_edges: Vec<EdgeId>,
        /// New edge lease length.
        edge_lease_ms: u64,
        /// Registered edges the leader has not heard from within the health
        /// timeout: their participants are released at once (their clients
        /// rejoin elsewhere); the registration stays.
        #[serde(default)]
        unhealthy: Vec<EdgeId>,
    },
}

/// Result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OpResult {
    /// `RegisterEdge` done.
    Registered {
        /// The boot id changed: the edge restarted.
        restarted: bool,
        /// Participants released because of the restart.
        released: u32,
        /// The edge's draining state.
        draining: bool,
    },
    /// `SetDraining` done.
    Draining {
        /// The new state.
        draining: bool,
    },
    /// `Join` done.
    Placed {
        /// Where the participant is.
        edge: EdgeId,
        /// False when an existing placement was returned unchanged.
        created: bool,
    },
    /// `Joined` / `Left` done.
    Reported {
        /// Entries recorded or released.
        recorded: u32,
        /// Entries that did not match (left from another edge).
        ignored: u32,
        /// `Joined` entries refused: the participant is connected to another
        /// edge by a newer session.
        #[serde(default)]
        moved: Vec<ParticipantRef>,
    },
    /// `Leave` or `RemoveEdge` done.
    EdgeChanged {
        /// Participants released.
        released: u32,
    },
    /// `Maintain` done.
    Maintained {
        /// Edge leases renewed.
        renewed: u32,
        /// Placements released.
        released: u32,
    },
    /// `StartRecording` or `MoveRecording` done (or the recording that
    /// already was).
    Recording {
        /// The recording as it stands.
        record: RecordingRecord,
        /// False when nothing changed.
        changed: bool,
    },
    /// `StopRecording` done: the recording that was stopped, if any.
    RecordingStopped(Option<RecordingRecord>),
    /// Refused; nothing changed.
    Rejected(ApplyError),
}

/// Why an operation changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The edge is not registered.
    #[error("edge {0} is not registered")]
    UnknownEdge(EdgeId),
    /// The edge is draining.
    #[error("edge {0} is draining")]
    EdgeDraining(EdgeId),
    /// The edge was removed by an operator; this process may not come back.
    #[error("edge {0} was removed; restart it to register again")]
    Removed(EdgeId),
    /// The edge has as many unused placements as it has capacity.
    #[error("edge {0} has as many placements waiting for their clients as it has capacity")]
    EdgeBusy(EdgeId),
    /// The leader has not heard from the edge within the health timeout
    /// (checked when the placement is proposed; not replicated state).
    #[error("edge {0} is not healthy at the leader")]
    EdgeUnhealthy(EdgeId),
    /// A `Leave` from a process that is not the registered one.
    #[error("edge {0} is registered with another boot id")]
    StaleBoot(EdgeId),
    /// Placing there would exceed the per-conference cap.
    #[error("conference {conference} already spans {max_edges} edges")]
    ConferenceFull {
        /// The conference.
        conference: ConferenceId,
        /// The cap.
        max_edges: u32,
    },
}

/// Result of one log entry: one [`OpResult`] per [`Op`], in order (empty
/// for membership and blank entries).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// Per-operation results.
    pub results: Vec<OpResult>,
}
