//! What the core asks its shell to do besides sending datagrams: signaling
//! messages to sessions, the end of a session's signaling, the participant
//! reports for the selector agent, and messages to sibling workers. The
//! shell owns the channels these go on; the core only queues them, in
//! order ([`super::Sfu::poll_output`]).

use std::collections::VecDeque;

use crate::agent::ParticipantEvent;
use crate::messages::ServerMessage;
use crate::peer::Peer;
use crate::router::PeerKey;
use crate::sibling::SiblingMsg;

/// One thing for the shell to do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send `message` on the WebSocket session `key`.
    Signal {
        /// The session.
        key: PeerKey,
        /// The message.
        message: ServerMessage,
    },
    /// The session `key` ended: close its WebSocket.
    CloseSignal(PeerKey),
    /// A participant joined or left this edge.
    Report(ParticipantEvent),
    /// A message for sibling worker `to` (control bytes, or the round's
    /// packets for it).
    Sibling {
        /// The worker's index.
        to: usize,
        /// What.
        message: SiblingMsg,
    },
}

/// The core's queue of [`Output`]s.
#[derive(Debug, Default)]
pub(crate) struct Outputs(VecDeque<Output>);

impl Outputs {
    /// A signaling message for `p`, if it is a WebSocket session.
    pub(crate) fn signal(&mut self, p: &Peer, message: ServerMessage) {
        if p.signaling {
            self.0.push_back(Output::Signal {
                key: p.key,
                message,
            });
        }
    }

    pub(crate) fn push(&mut self, o: Output) {
        self.0.push_back(o);
    }

    pub(crate) fn pop(&mut self) -> Option<Output> {
        self.0.pop_front()
    }
}
