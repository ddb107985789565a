//! # geomesh-selector
//!
//! The selector: decides which edge each participant uses.
//!
//! **Owns** (as the `[selector]` work lands): the placement strategy — a
//! pure function, the only placement code in geomesh, which the simulator
//! calls too — the Raft-replicated state (openraft on redb: edges,
//! conference → edges, participant → edge), the soft state from edge
//! heartbeats, the public HTTP API (`POST /v1/join`, …) and the GeoDNS
//! server.
//!
//! **Does not own**: GeoIP lookups and distances (`geomesh-geoip`), the
//! topology schema and API body types (`geomesh-core`), or anything that
//! carries media.
//!
//! Today the crate is empty: it arrives with the `[selector]` issue.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
