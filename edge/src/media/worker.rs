//! One media worker's task: waits for input, hands it to its [`Sfu`] core
//! with the time, sends the core's datagrams and carries out its other
//! outputs (signaling messages, closed sessions, reports) on the channels
//! it holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::info;

use super::{Request, Response};
use crate::agent::ParticipantEvent;
use crate::messages::ServerMessage;
use crate::metrics::{Direction, Metrics, Traffic};
use crate::router::PeerKey;
use crate::sfu::Output;
use crate::sfu::Sfu;
use crate::sibling::SiblingRx;
use crate::socket::MediaSocket;
use crate::workers;

/// What woke a worker.
// One per round, on the stack: the size of a command does not matter.
#[allow(clippy::large_enum_variant)]
enum Input {
    Datagrams,
    Command(Request),
    Octo(geomesh_mesh::transport::OctoEvent),
    Sibling(crate::sibling::SiblingMsg),
    SiblingMedia,
    Timer,
    Stop,
}

/// A worker: its core and the I/O around it.
pub(super) struct Worker {
    pub(super) core: Sfu,
    /// The media socket, shared by the workers for sending.
    pub(super) socket: Arc<MediaSocket>,
    pub(super) metrics: Arc<Metrics>,
    /// The edge's octo events for this worker (none without peer edges).
    pub(super) octo_events: Option<mpsc::Receiver<geomesh_mesh::transport::OctoEvent>>,
    /// WebSocket sessions' signaling channels.
    pub(super) signals: HashMap<PeerKey, mpsc::UnboundedSender<ServerMessage>>,
    /// Participant arrivals and departures for the selector agent.
    pub(super) reports: Option<mpsc::UnboundedSender<ParticipantEvent>>,
    /// Every worker's sibling channels, by index.
    pub(super) siblings: Vec<crate::sibling::SiblingTx>,
    /// The emulated-WAN lab (`None` outside it): who is how far, and the
    /// line that holds their datagrams.
    pub(super) lab: Option<(Arc<crate::workers::Demux>, crate::lab::DelayLine)>,
}

/// Receives the next octo event, or waits forever without octo.
async fn next_octo(
    events: &mut Option<mpsc::Receiver<geomesh_mesh::transport::OctoEvent>>,
) -> Option<geomesh_mesh::transport::OctoEvent> {
    match events.as_mut() {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut dgrams: mpsc::Receiver<workers::Batch>,
        mut siblings: SiblingRx,
    ) {
        let mut batch: Vec<workers::Batch> = Vec::with_capacity(16);
        let mut from_siblings = Vec::with_capacity(16);
        let busy = self
            .metrics
            .worker_busy
            .get_or_create(&crate::metrics::WorkerLabel {
                worker: self.core.worker() as u32,
            })
            .clone();
        // What the core queued while it was built (the sibling links' Hellos).
        self.outputs();
        loop {
            let deadline = self.core.poll_timeout().at;
            let input = tokio::select! {
                n = dgrams.recv_many(&mut batch, 16) => if n == 0 { Input::Stop } else { Input::Datagrams },
                cmd = rx.recv() => cmd.map_or(Input::Stop, Input::Command),
                Some(ev) = next_octo(&mut self.octo_events) => Input::Octo(ev),
                Some(msg) = siblings.control.recv() => Input::Sibling(msg),
                _ = siblings.media.recv_many(&mut from_siblings, 16), if !siblings.media.is_closed() => {
                    Input::SiblingMedia
                }
                _ = tokio::time::sleep_until(deadline.into()) => Input::Timer,
            };
            let woke = Instant::now();
            let core = &mut self.core;
            match input {
                Input::Datagrams => {
                    for d in batch.drain(..).flatten() {
                        core.handle_datagram(Instant::now(), d.src, &d.data);
                    }
                }
                Input::Command(req) => {
                    let response = core.handle_command(woke, req.cmd);
                    if let (Response::Joined(j), Some(signal)) = (&response, req.signal) {
                        self.signals.insert(j.key, signal);
                    }
                    if let Some(reply) = req.reply {
                        // The asker gave up (its connection closed).
                        let _ = reply.send(response);
                    }
                }
                Input::Octo(ev) => core.handle_octo(woke, ev),
                Input::Sibling(msg) => core.handle_sibling(woke, msg),
                Input::SiblingMedia => {
                    for msg in from_siblings.drain(..) {
                        core.handle_sibling(Instant::now(), msg);
                    }
                }
                Input::Timer => {}
                Input::Stop => break,
            }
            core.handle_timeout(Instant::now());
            core.end_round();
            self.send();
            self.outputs();
            busy.inc_by(woke.elapsed().as_secs_f64());
        }
        info!("media loop stopped");
    }

    /// Carries out the core's outputs.
    fn outputs(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Signal { key, message } => {
                    if let Some(tx) = self.signals.get(&key) {
                        // A closed channel: the socket is gone, the session ends soon.
                        let _ = tx.send(message);
                    }
                }
                // Dropping the sender closes the WebSocket session.
                Output::CloseSignal(key) => drop(self.signals.remove(&key)),
                Output::Report(ev) => {
                    if let Some(r) = &self.reports {
                        let _ = r.send(ev);
                    }
                }
                Output::Sibling { to, message } => {
                    let lost = self.siblings.get(to).map_or(0, |tx| tx.carry(message));
                    if lost > 0 {
                        Metrics::count_n(&self.metrics.dropped, "sibling_backlog", lost as u64);
                    }
                }
            }
        }
    }

    /// Sends this round's datagrams.
    fn send(&mut self) {
        let outbox = self.core.outbox();
        if outbox.is_empty() {
            return;
        }
        if let Some((demux, line)) = &self.lab {
            // The lab: a located participant's datagrams wait their delay.
            outbox.drain(|to, bytes| match demux.lab_delay(&to) {
                Some(one_way) => line.hold(
                    one_way,
                    crate::lab::Held::Out {
                        to,
                        bytes: bytes.to_vec(),
                    },
                ),
                None => {
                    if self.socket.send(to, bytes, None).is_err() {
                        Metrics::count(&self.metrics.dropped, "send_error");
                    }
                }
            });
            return;
        }
        let done = outbox.flush(&self.socket);
        let out = Traffic {
            direction: Direction::Out,
        };
        self.metrics
            .datagrams
            .get_or_create(&out)
            .inc_by(done.datagrams);
        self.metrics.bytes.get_or_create(&out).inc_by(done.bytes);
        self.metrics.send_calls.inc_by(done.calls);
        if done.failed > 0 {
            Metrics::count_n(&self.metrics.dropped, "send_error", done.failed);
        }
    }
}
