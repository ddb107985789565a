//! # geomesh-mesh
//!
//! The octo mesh between edges: everything that crosses from one edge bridge
//! to another.
//!
//! **Owns** (as the `[octo]` work lands): the versioned octo wire protocol —
//! length-prefixed control frames on one reliable QUIC stream per link and
//! compact-header media datagrams — as a sans-IO codec and link state
//! machine (`handle_*(now, …)` in, `poll_*` out, no sockets, no clock), and
//! the thin quinn/rustls driver that carries it: one QUIC connection per edge
//! pair, ALPN `geomesh-octo/1`, mutual TLS with the cluster CA, the peer's
//! edge id taken from its certificate.
//!
//! **Does not own**: what an edge does with media (forwarding, SFU routing:
//! `geomesh-edge`), who should talk to whom (the selector), or credential
//! files (`geomesh_core::credentials`).
//!
//! Today the crate is empty: the protocol arrives with the `[octo]` issue.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
