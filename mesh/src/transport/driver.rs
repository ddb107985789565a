//! The driver: one task per peer for the node's life, the one owner of the
//! peer's [`Link`]. It installs connections, moves control bytes, reads
//! media datagrams, runs the link's commands and timers, publishes the
//! link's state for the edge's threads and forwards the link's events.

use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, trace, warn};

use super::OctoEvent;
use super::metrics::{add, inc};
use super::peer::{Command, NewConn, Peer, Published};
use crate::link::{DownReason, Link, LinkError, LinkEvent, close_code};
use crate::wire::{MAX_DATAGRAM, MIN_FRAGMENT_DATAGRAM};

/// Datagrams read, or commands run, in one go before the driver looks at
/// anything else.
const BATCH: usize = 64;

struct Current {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    lower_dialed: bool,
    /// Set when we close it because the link failed.
    failure: Option<LinkError>,
}

fn down_reason(e: &ConnectionError, failure: Option<LinkError>) -> DownReason {
    if let Some(f) = failure {
        return DownReason::Failed(f);
    }
    match e {
        ConnectionError::ApplicationClosed(c) => DownReason::PeerClosed {
            code: c.error_code.into_inner(),
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        },
        other => DownReason::Lost(other.to_string()),
    }
}

/// Reads the next chunk of the control stream, or waits forever without one.
async fn read_control(cur: &mut Option<Current>) -> Result<Option<bytes::Bytes>, String> {
    match cur {
        Some(c) => match c.recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => Err("control stream finished by the peer".into()),
            Err(e) => Err(e.to_string()),
        },
        None => std::future::pending().await,
    }
}

/// The next media datagram, or waits forever without a connection.
async fn read_datagram(conn: Option<&Connection>) -> Result<bytes::Bytes, ConnectionError> {
    match conn {
        Some(c) => c.read_datagram().await,
        None => std::future::pending().await,
    }
}

/// The peer's driver and what it owns.
struct Driver {
    peer: Arc<Peer>,
    link: Link,
    cur: Option<Current>,
    /// The connection media is read from (cleared when it fails, until
    /// the next one is installed).
    media: Option<Connection>,
    events: mpsc::Sender<OctoEvent>,
}

/// Runs the peer's driver until the node shuts down.
pub(crate) async fn drive(
    peer: Arc<Peer>,
    link: Link,
    conns: mpsc::UnboundedReceiver<NewConn>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<OctoEvent>,
) {
    let span = link.span().clone();
    let d = Driver {
        peer,
        link,
        cur: None,
        media: None,
        events,
    };
    d.run(conns, commands).instrument(span).await
}

impl Driver {
    async fn run(
        mut self,
        mut conns: mpsc::UnboundedReceiver<NewConn>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        // Whether the link changed other than by a datagram (which never
        // changes what is published) since the last publication.
        let mut changed = true;
        loop {
            if changed {
                self.publish();
                changed = false;
            }
            self.flush().await;
            let deadline = self.link.poll_timeout().map(|d| d.at);
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            let media = self.media.clone();
            tokio::select! {
                new = conns.recv() => match new {
                    Some(new) => self.install(new),
                    // The node is shutting down.
                    None => return,
                },
                Some(cmd) = commands.recv() => {
                    cmd(&mut self.link);
                    // What else is queued, before publishing once.
                    for _ in 0..BATCH {
                        match commands.try_recv() {
                            Ok(cmd) => cmd(&mut self.link),
                            Err(_) => break,
                        }
                    }
                }
                r = read_control(&mut self.cur) => match r {
                    Ok(Some(chunk)) => {
                        add(&self.peer.metrics.control_rx_bytes, chunk.len());
                        self.link.handle_control(Instant::now(), &chunk);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // `cur` is Some: read_control only returns with a connection.
                        let c = self.cur.take().expect("a read result implies a connection");
                        self.lost(c, e, false);
                    }
                },
                r = read_datagram(media.as_ref()) => {
                    match r {
                        Ok(d) => {
                            self.datagram(d);
                            // What else has arrived, without waiting.
                            for _ in 1..BATCH {
                                match media.as_ref().and_then(|c| c.read_datagram().now_or_never()) {
                                    Some(Ok(d)) => self.datagram(d),
                                    _ => break,
                                }
                            }
                        }
                        // The control stream reports the connection's end.
                        Err(_) => self.media = None,
                    }
                    continue;
                }
                _ = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.link.handle_timeout(Instant::now());
                }
            }
            changed = true;
        }
    }

    /// Publishes the link's state for the edge's threads.
    fn publish(&self) {
        self.peer.published.store(Arc::new(Published {
            table: self.link.media_table(),
            conn: self.cur.as_ref().map(|c| c.conn.clone()),
        }));
        self.peer.metrics.set_fragments(self.link.fragment_stats());
    }

    /// Hands the link's events to the edge and writes its control bytes.
    async fn flush(&mut self) {
        while let Some(ev) = self.link.poll_event() {
            match &ev {
                LinkEvent::Failed(err) => {
                    if let Some(c) = &mut self.cur {
                        c.conn.close(
                            VarInt::from_u32(err.close_code()),
                            err.to_string().as_bytes(),
                        );
                        c.failure = Some(err.clone());
                    }
                }
                LinkEvent::Rtt(rtt) => self.peer.metrics.set_rtt(*rtt),
                _ => {}
            }
            let event = OctoEvent::Link {
                peer: self.peer.id.clone(),
                event: ev,
            };
            // The edge dropped its receiver: it is shutting down.
            let _ = self.events.send(event).await;
        }
        while let Some(b) = self.link.poll_transmit() {
            let Some(c) = &mut self.cur else {
                continue;
            };
            add(&self.peer.metrics.control_tx_bytes, b.len());
            if let Err(e) = c.send.write_all(&b).await {
                debug!(error = %e, "control stream write failed");
            }
        }
    }

    /// The media hot path in.
    fn datagram(&mut self, datagram: bytes::Bytes) {
        let m = &self.peer.metrics;
        let len = datagram.len();
        let r = self.link.handle_datagram(datagram);
        // Before the packet is handed on: who sees it sees the counters.
        m.set_fragments(self.link.fragment_stats());
        match r {
            // A fragment; its packet is not complete yet.
            Ok(None) => add(&m.media_rx_bytes, len),
            Ok(Some(media)) => {
                inc(&m.media_rx_packets);
                add(&m.media_rx_bytes, len);
                match self.events.try_send(OctoEvent::Media(media)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => inc(&m.rx_dropped_backpressure),
                    // The edge is shutting down.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Err(e) => {
                inc(&m.rx_malformed);
                trace!(error = %e, "dropped a datagram");
            }
        }
    }

    /// The current connection `c` is gone. `replaced`: a new one is being
    /// installed right away, so the dialer must not see a gap.
    fn lost(&mut self, c: Current, detail: String, replaced: bool) {
        self.media = None;
        let reason = match c.conn.close_reason() {
            Some(e) => down_reason(&e, c.failure),
            None => {
                c.conn.close(
                    VarInt::from_u32(close_code::PROTOCOL),
                    b"control stream lost",
                );
                c.failure
                    .map(DownReason::Failed)
                    .unwrap_or(DownReason::Lost(detail))
            }
        };
        self.link.handle_disconnected(Instant::now(), reason);
        if !replaced {
            self.peer.connected.send_replace(false);
        }
    }

    fn install(&mut self, new: NewConn) {
        let peer = &self.peer;
        let lower_dialed = if new.dialed_by_me {
            peer.local < peer.id
        } else {
            peer.id < peer.local
        };
        if let Some(c) = self.cur.as_ref() {
            if c.lower_dialed && !lower_dialed {
                debug!("refusing a duplicate connection dialed by the higher id");
                new.conn.close(
                    VarInt::from_u32(close_code::DUPLICATE),
                    b"duplicate connection",
                );
                return;
            }
            // `cur` is Some: checked above.
            let old = self.cur.take().expect("current connection");
            old.conn.close(
                VarInt::from_u32(close_code::DUPLICATE),
                b"replaced by a newer connection",
            );
            self.lost(old, "replaced by a newer connection".into(), true);
        }
        let m = &self.peer.metrics;
        if m.connections.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            inc(&m.reconnects);
        }
        inc(&m.connections);
        match new.conn.max_datagram_size() {
            Some(max) if max >= MAX_DATAGRAM => trace!(max, "datagram size fits every packet"),
            Some(max) if max >= MIN_FRAGMENT_DATAGRAM => {
                trace!(max, "datagram size; larger packets go as fragments")
            }
            other => warn!(
                ?other,
                need = MIN_FRAGMENT_DATAGRAM,
                "the path's datagram size is too small even for fragments; big packets will be dropped"
            ),
        }
        self.media = Some(new.conn.clone());
        self.link.handle_connected(Instant::now());
        self.cur = Some(Current {
            conn: new.conn,
            send: new.send,
            recv: new.recv,
            lower_dialed,
            failure: None,
        });
        self.peer.connected.send_replace(true);
    }
}
