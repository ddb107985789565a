//! Making connections: the accept loop, the per-peer dial loop with
//! backoff, and reading the peer's edge id from its certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_core::EdgeId;
use quinn::{Connection, VarInt};
use tracing::debug;

use super::Inner;
use super::peer::{NewConn, Peer};
use crate::link::close_code;
use crate::tls::{self, IdentityError};

fn peer_edge(conn: &Connection) -> Result<EdgeId, IdentityError> {
    let certs = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or(IdentityError::NoCertificate("no peer certificate"))?;
    let first = certs
        .first()
        .ok_or(IdentityError::NoCertificate("empty peer certificate chain"))?;
    tls::edge_id(first)
}

pub(super) async fn accept_loop(node: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = node.upgrade() else { return };
        let endpoint = inner.endpoint.clone();
        drop(inner);
        let Some(incoming) = endpoint.accept().await else {
            return;
        };
        let Some(inner) = node.upgrade() else { return };
        let weak = node.clone();
        inner.spawn(async move {
            let remote = incoming.remote_address();
            let Some(inner) = weak.upgrade() else { return };
            let timeout = inner.config.handshake_timeout;
            let conn = match tokio::time::timeout(timeout, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return inner.reject(remote, format!("handshake: {e}")),
                Err(_) => return inner.reject(remote, "handshake timed out".into()),
            };
            let id = match peer_edge(&conn) {
                Ok(id) if id != inner.config.link.local_edge && inner.accepts(&id) => id,
                Ok(id) if id != inner.config.link.local_edge => {
                    conn.close(VarInt::from_u32(close_code::NOT_AN_EDGE), b"unknown edge");
                    return inner.reject(
                        remote,
                        format!("unknown edge {id}: neither in the topology nor registered"),
                    );
                }
                Ok(_) => {
                    conn.close(VarInt::from_u32(close_code::NOT_AN_EDGE), b"that is me");
                    return inner.reject(remote, "a connection from my own id".into());
                }
                Err(e) => {
                    conn.close(
                        VarInt::from_u32(close_code::NOT_AN_EDGE),
                        e.to_string().as_bytes(),
                    );
                    return inner.reject(remote, e.to_string());
                }
            };
            let (send, recv) = match tokio::time::timeout(timeout, conn.accept_bi()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return debug!(%remote, error = %e, "no control stream"),
                Err(_) => {
                    conn.close(VarInt::from_u32(close_code::TIMEOUT), b"no control stream");
                    return inner.reject(remote, format!("{id}: no control stream in time"));
                }
            };
            debug!(%remote, peer = %id, "accepted octo connection");
            let peer = inner.peer(&id);
            let _ = peer.conns.send(NewConn {
                conn,
                send,
                recv,
                dialed_by_me: false,
            });
        });
    }
}

/// Redials one peer for the node's life (see the module docs).
pub(super) async fn dial_loop(node: std::sync::Weak<Inner>, peer: Arc<Peer>) {
    let mut connected = peer.connected.subscribe();
    let (min, max, delay, higher) = {
        let Some(inner) = node.upgrade() else { return };
        let c = &inner.config;
        (
            c.backoff_min,
            c.backoff_max,
            c.higher_dial_delay,
            peer.local > peer.id,
        )
    };
    let mut backoff = min;
    loop {
        // Wait while some connection (ours or theirs) is up.
        while *connected.borrow_and_update() {
            if connected.changed().await.is_err() {
                return;
            }
        }
        if higher {
            tokio::time::sleep(delay).await;
            if *connected.borrow() {
                continue;
            }
        }
        let Some(inner) = node.upgrade() else { return };
        let addr = *peer.addr.lock().expect("peer address lock poisoned");
        let Some(addr) = addr else { return };
        let started = Instant::now();
        match dial(&inner, &peer, addr).await {
            Ok(new) => {
                let conn = new.conn.clone();
                drop(inner);
                if peer.conns.send(new).is_err() {
                    return;
                }
                conn.closed().await;
                // A connection that did not last is a failed attempt.
                if started.elapsed() < Duration::from_secs(10) {
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(max);
                } else {
                    backoff = min;
                }
            }
            Err(e) => {
                debug!(peer = %peer.id, %addr, error = %e, "dial failed");
                drop(inner);
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

/// `d` plus up to 25 % (from the clock's nanoseconds: good enough to spread
/// reconnects of many edges).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

async fn dial(inner: &Inner, peer: &Peer, addr: SocketAddr) -> Result<NewConn, String> {
    let connecting = inner
        .endpoint
        .connect_with(inner.client.clone(), addr, peer.id.as_str())
        .map_err(|e| e.to_string())?;
    let remote = addr;
    let conn = match tokio::time::timeout(inner.config.handshake_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            if !matches!(
                e,
                quinn::ConnectionError::TimedOut | quinn::ConnectionError::LocallyClosed
            ) {
                inner.reject(remote, format!("{}: handshake: {e}", peer.id));
            }
            return Err(e.to_string());
        }
        Err(_) => return Err("handshake timed out".into()),
    };
    match peer_edge(&conn) {
        Ok(id) if id == peer.id => {}
        other => {
            // The verifier checked the server name; this is belt and braces.
            conn.close(VarInt::from_u32(close_code::NOT_AN_EDGE), b"wrong edge");
            return Err(format!("server certificate: {other:?}"));
        }
    }
    let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    Ok(NewConn {
        conn,
        send,
        recv,
        dialed_by_me: true,
    })
}
