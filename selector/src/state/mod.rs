//! The replicated state: what goes into the Raft log and the pure function
//! that applies it.

mod command;
mod machine;

pub use command::{ApplyError, Command, Op, OpResult, Response};
pub use machine::{EdgeRecord, ParticipantRecord, RecordingRecord, STOPPED_KEPT_MS, SelectorState};
