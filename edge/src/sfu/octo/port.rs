//! A link to another edge as the core uses it: the QUIC transport's
//! [`LinkHandle`] and this worker's [`MediaSender`] on it, or in the
//! virtual-time tests a [`MemoryPort`] whose [`Link`] the test harness
//! drives itself (it plays the transport's driver: it runs the commands,
//! publishes the link's [`geomesh_mesh::link::MediaTable`], and carries
//! control bytes and datagrams with a simulated delay).
//!
//! Either way the core never holds the link: it sends commands, which the
//! link's owner runs in order, and decides about each packet from the
//! published table.

use geomesh_core::EdgeId;
use geomesh_mesh::link::Link;
use geomesh_mesh::transport::{LinkHandle, MediaSender, SendError};
use geomesh_mesh::wire::{MediaType, SourceId};

/// One peer edge's link.
#[derive(Debug)]
pub(crate) enum Port {
    /// Over QUIC (`geomesh_mesh::transport`).
    Quic {
        link: LinkHandle,
        sender: MediaSender,
    },
    /// Driven by the virtual-time harness.
    #[cfg(test)]
    Memory(MemoryPort, geomesh_mesh::link::LayerSwitches),
}

impl Port {
    /// This worker's port on a QUIC link.
    pub(crate) fn quic(link: LinkHandle) -> Self {
        let sender = link.media_sender();
        Port::Quic { link, sender }
    }

    /// The peer edge.
    pub(crate) fn peer(&self) -> &EdgeId {
        match self {
            Port::Quic { link, .. } => link.peer(),
            #[cfg(test)]
            Port::Memory(m, _) => &m.peer,
        }
    }

    /// Has the link's owner run `f` on it, after what was sent before.
    pub(crate) fn command(&self, f: impl FnOnce(&mut Link) + Send + 'static) {
        match self {
            Port::Quic { link, .. } => link.command(f),
            #[cfg(test)]
            Port::Memory(m, _) => m.command(Box::new(f)),
        }
    }

    /// Whether the peer wants this packet now; `keyframe`: it starts a
    /// keyframe of `layer` (which completes a pending switch of layer).
    pub(crate) fn wants_media(
        &mut self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        keyframe: bool,
    ) -> bool {
        match self {
            Port::Quic { sender, .. } => sender.wants(source, ty, layer, keyframe),
            #[cfg(test)]
            Port::Memory(m, switches) => m.admit(switches, source, ty, layer, 0, keyframe).is_ok(),
        }
    }

    /// Sends one packet of my source, if the peer wants it.
    pub(crate) fn send_media(
        &mut self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        keyframe: bool,
        packet: &[u8],
    ) -> Result<(), SendError> {
        match self {
            Port::Quic { sender, .. } => sender.send_media(source, ty, layer, keyframe, packet),
            #[cfg(test)]
            Port::Memory(m, switches) => {
                let header = m.admit(switches, source, ty, layer, packet.len(), keyframe)?;
                let mut buf = bytes::BytesMut::new();
                geomesh_mesh::link::encode_whole(header, packet, &mut buf);
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

    use bytes::Bytes;

    use geomesh_core::EdgeId;
    use geomesh_mesh::link::{LayerSwitches, Link, MediaTable, NotSent};
    use geomesh_mesh::wire::{MediaHeader, MediaType, SourceId};

    /// A command for the link's owner (the harness).
    pub(crate) type Command = Box<dyn FnOnce(&mut Link) + Send>;

    /// A link the harness drives: it runs the commands queued here, reads
    /// the control bytes and datagrams, hands them to the peer's link after
    /// the delay, and publishes the table the core decides by.
    #[derive(Clone)]
    pub(crate) struct MemoryPort {
        pub peer: EdgeId,
        pub link: Arc<Mutex<Link>>,
        /// Commands from the core, in order.
        pub commands: Arc<Mutex<VecDeque<Command>>>,
        /// What the harness last published.
        pub table: Arc<Mutex<MediaTable>>,
        /// Media datagrams written, for the harness to carry.
        pub datagrams: Arc<Mutex<VecDeque<Bytes>>>,
    }

    impl std::fmt::Debug for MemoryPort {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MemoryPort")
                .field("peer", &self.peer)
                .finish()
        }
    }

    impl MemoryPort {
        pub(crate) fn new(peer: EdgeId, link: Link) -> Self {
            Self {
                peer,
                link: Arc::new(Mutex::new(link)),
                commands: Default::default(),
                table: Default::default(),
                datagrams: Default::default(),
            }
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, Link> {
            self.link.lock().expect("a test link lock")
        }

        pub(crate) fn command(&self, f: Command) {
            self.commands
                .lock()
                .expect("a test queue lock")
                .push_back(f);
        }

        /// As the driver does: runs the queued commands, then `f`, then
        /// publishes the link's table.
        pub(crate) fn drive<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
            let mut link = self.lock();
            let queued: Vec<_> = self
                .commands
                .lock()
                .expect("a test queue lock")
                .drain(..)
                .collect();
            for c in queued {
                c(&mut link);
            }
            let r = f(&mut link);
            *self.table.lock().expect("a test table lock") = link.media_table();
            r
        }

        /// The header for a packet by the published table (see
        /// `MediaSender`), a switch of layer told to the link.
        pub(crate) fn admit(
            &self,
            switches: &mut LayerSwitches,
            source: SourceId,
            ty: MediaType,
            layer: u8,
            len: usize,
            keyframe: bool,
        ) -> Result<MediaHeader, NotSent> {
            let table = self.table.lock().expect("a test table lock");
            let a = switches.header(&table, source, ty, layer, len, keyframe)?;
            if a.switched {
                self.command(Box::new(move |l: &mut Link| {
                    l.keyframe(source, layer);
                }));
            }
            Ok(a.header)
        }
    }
}
