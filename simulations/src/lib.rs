//! # geomesh-sim
//!
//! Latency studies on real geography that run the production placement
//! code.
//!
//! **Owns** (as the `[simulations]` work lands): scenario files, the
//! latency model fitted to measured inter-region RTTs, a deterministic
//! discrete-event engine, the baseline strategies it compares against
//! (`single`, `region`, `nearest`), and the CSV/JSON/SVG outputs.
//!
//! **Does not own**: the `geomesh` placement strategy itself — that is
//! `geomesh-selector`'s, called as is, never copied here — nor GeoIP or
//! distance code (`geomesh-geoip`).
//!
//! Today the crate is empty: it arrives with the `[simulations]` issue.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
