//! A link to another edge as the core uses it: the QUIC transport's
//! [`LinkHandle`], or in the virtual-time tests a [`MemoryPort`] whose
//! [`Link`] the test harness drives itself (it plays the transport's
//! driver: control bytes and datagrams cross with a simulated delay).

use geomesh_core::EdgeId;
use geomesh_mesh::link::{Link, UsageError};
use geomesh_mesh::transport::{LinkHandle, SendError};
use geomesh_mesh::wire::{MediaType, SourceId};

/// One peer edge's link.
#[derive(Debug, Clone)]
pub(crate) enum Port {
    /// Over QUIC (`geomesh_mesh::transport`).
    Quic(LinkHandle),
    /// Driven by the virtual-time harness.
    #[cfg(test)]
    Memory(MemoryPort),
}

impl Port {
    /// The peer edge.
    pub(crate) fn peer(&self) -> &EdgeId {
        match self {
            Port::Quic(h) => h.peer(),
            #[cfg(test)]
            Port::Memory(m) => &m.peer,
        }
    }

    /// Runs `f` on the link (and has what it queued sent).
    pub(crate) fn with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        match self {
            Port::Quic(h) => h.with_link(f),
            #[cfg(test)]
            Port::Memory(m) => f(&mut m.lock()),
        }
    }

    /// Asks the peer for a keyframe of its source (rate-limited by the link).
    pub(crate) fn request_keyframe(
        &self,
        source: SourceId,
        layer: Option<u8>,
    ) -> Result<bool, UsageError> {
        match self {
            Port::Quic(h) => h.request_keyframe(source, layer),
            #[cfg(test)]
            Port::Memory(m) => {
                let now = m.now();
                m.lock().request_keyframe(now, source, layer)
            }
        }
    }

    /// Whether the peer wants this packet (a read).
    pub(crate) fn wants_media(&self, source: SourceId, ty: MediaType, layer: u8) -> bool {
        match self {
            Port::Quic(h) => h.wants_media(source, ty, layer),
            #[cfg(test)]
            Port::Memory(m) => m.lock().wants_media(source, ty, layer),
        }
    }

    /// Sends one packet of my source, if the peer wants it.
    pub(crate) fn send_media(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
    ) -> Result<(), SendError> {
        match self {
            Port::Quic(h) => h.send_media(source, ty, layer, packet),
            #[cfg(test)]
            Port::Memory(m) => {
                let mut buf = bytes::BytesMut::with_capacity(
                    packet.len() + geomesh_mesh::wire::MAX_MEDIA_HEADER,
                );
                m.lock().encode_media(source, ty, layer, packet, &mut buf)?;
                m.datagrams
                    .lock()
                    .expect("a test queue lock")
                    .push_back(buf.freeze());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
pub(crate) use memory::MemoryPort;

#[cfg(test)]
mod memory {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::Instant;

    use bytes::Bytes;

    use geomesh_core::EdgeId;
    use geomesh_mesh::link::Link;

    /// A link the harness drives: it reads the control bytes and datagrams
    /// queued here and hands them to the peer's link after the delay.
    #[derive(Debug, Clone)]
    pub(crate) struct MemoryPort {
        pub peer: EdgeId,
        pub link: Arc<Mutex<Link>>,
        /// Media datagrams written, for the harness to carry.
        pub datagrams: Arc<Mutex<VecDeque<Bytes>>>,
        /// The harness's clock (the link's keyframe rate limit reads it).
        pub clock: Arc<Mutex<Instant>>,
    }

    impl MemoryPort {
        pub(crate) fn lock(&self) -> MutexGuard<'_, Link> {
            self.link.lock().expect("a test link lock")
        }

        pub(crate) fn now(&self) -> Instant {
            *self.clock.lock().expect("a test clock lock")
        }
    }
}
