//! Sibling workers of this edge: links over in-process channels that
//! carry a conference spread over workers like octo carries it between edges.

use std::time::Instant;

use geomesh_core::EdgeId;
use geomesh_mesh::wire::{self};

use crate::forward::InPacket;
use crate::metrics::Metrics;
use crate::sfu::{Output, Sfu};
use crate::sibling::SiblingMsg;

impl Sfu {
    /// A message from a sibling worker.
    pub(in crate::sfu) fn on_sibling(&mut self, msg: SiblingMsg) {
        let now = self.now;
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        match msg {
            SiblingMsg::Control { from, bytes } => {
                let Some(id) = octo.sibling_ids.get(from).cloned() else {
                    return;
                };
                let Some(link) = octo.siblings.get_mut(&id) else {
                    return;
                };
                link.handle_control(now, &bytes);
                self.sibling_events(&id);
            }
            SiblingMsg::Media { from, packets } => {
                let Some(id) = octo.sibling_ids.get(from).cloned() else {
                    return;
                };
                // One key for the batch: no allocation per packet.
                let mut key = (id, wire::SourceId(0));
                for (source, p) in packets {
                    key.1 = source;
                    self.on_sibling_media(&key, p);
                }
            }
        }
    }

    /// Sibling links whose timers are due.
    pub(in crate::sfu) fn sibling_timeouts(&mut self, now: Instant) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        for (id, s) in octo.siblings.iter_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
                due.push(id.clone());
            }
        }
        for id in due {
            self.sibling_events(&id);
        }
    }

    /// Applies what a sibling link has to say, like any link's events.
    pub(in crate::sfu) fn sibling_events(&mut self, id: &EdgeId) {
        // Bounded: a link yields what one input produced.
        for _ in 0..10_000 {
            let Some(ev) = self
                .octo
                .as_mut()
                .and_then(|o| o.siblings.get_mut(id))
                .and_then(|s| s.poll_event())
            else {
                return;
            };
            self.on_link_event(id.clone(), ev);
        }
    }

    /// Queues the round's packets for the sibling workers.
    pub(in crate::sfu) fn flush_siblings(&mut self) {
        if let Some(octo) = self.octo.as_mut() {
            for s in octo.siblings.values_mut() {
                s.flush();
            }
        }
    }

    /// Moves what the sibling links queued to the outputs.
    pub(in crate::sfu) fn sibling_outputs(&mut self) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        for s in octo.siblings.values_mut() {
            let (to, messages) = s.take_queued();
            for message in messages {
                self.outputs.push(Output::Sibling { to, message });
            }
        }
    }

    /// A sibling's packet: forwarded like a local publisher's, simulcast
    /// layers and all (the sibling already counted it in and extended its
    /// sequence number).
    pub(in crate::sfu) fn on_sibling_media(&mut self, key: &(EdgeId, wire::SourceId), p: InPacket) {
        let Some(r) = self.octo.as_ref().and_then(|o| o.sources.get(key)) else {
            Metrics::count(&self.metrics.dropped, "octo_unknown_source");
            return;
        };
        let local = r.local;
        let input = InPacket {
            codec: r.codec,
            // Every layer crosses: legs choose theirs (at most 8, as announced).
            layers: r.info.info.layers.len().clamp(1, 8) as u8,
            ..p
        };
        self.forward(local, &input);
    }
}
