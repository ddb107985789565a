//! One participant session: its `Rtc`, what it publishes, what it receives,
//! and where its SDP renegotiation stands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::config::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::{Direction, MediaKind, Mid, Rid};
use str0m::{Candidate, IceCreds, Rtc};

use geomesh_core::{ConferenceId, ParticipantId};

use crate::forward::OutForward;
use crate::router::{Kind, PeerKey, Role, SourceId};

/// A session that has not connected this long after its offer is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where one outgoing track (a source sent to this peer) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Needs an m-line: the next edge offer adds it.
    ToOpen,
    /// In an offer awaiting the answer.
    Negotiating(Mid),
    /// Flowing.
    Open(Mid),
    /// Its source is gone: the next offer stops the m-line.
    ToStop(Mid),
    /// Stopped in an offer awaiting the answer.
    NegotiatingStop(Mid),
}

impl OutState {
    /// The m-line, once it has one.
    pub fn mid(self) -> Option<Mid> {
        match self {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::NegotiatingStop(m) => Some(m),
        }
    }
}

/// One outgoing track.
#[derive(Debug)]
pub struct OutTrack {
    /// Where it stands.
    pub state: OutState,
    /// Audio or video.
    pub kind: Kind,
    /// The publisher's participant id (the `msid` stream id the client sees).
    pub owner: ParticipantId,
    /// The publisher's session.
    pub owner_key: PeerKey,
    /// Sequence/timestamp rewriting and payload-type mapping for this leg.
    pub forward: OutForward,
}

/// One participant session.
pub struct Peer {
    /// Session key.
    pub key: PeerKey,
    /// Participant id from the token.
    pub participant: ParticipantId,
    /// Display name from the token.
    pub name: Option<String>,
    /// The conference.
    pub conference: ConferenceId,
    /// What the session does.
    pub role: Role,
    /// When the session started, Unix ms (the newer of two sessions of one
    /// participant on different edges is the real one).
    pub since_ms: u64,
    /// A WebSocket session (it hears signaling messages; WHIP/WHEP do not).
    pub signaling: bool,
    /// The WebRTC session, once the client's offer arrived.
    pub rtc: Option<Rtc>,
    /// Our ICE ufrag (demultiplexing key for new addresses).
    pub ufrag: String,
    ice_pass: String,
    /// When the offer was accepted (connect deadline).
    pub offered_at: Option<Instant>,
    /// ICE + DTLS up.
    pub connected: bool,
    /// Incoming m-lines → the sources they publish.
    pub sources: HashMap<Mid, SourceId>,
    /// Simulcast RIDs each incoming m-line announced, lowest layer first
    /// (empty: one encoding). A packet's layer is its RID's position.
    pub rids: HashMap<Mid, Vec<Rid>>,
    /// Sources this peer receives.
    pub out: HashMap<SourceId, OutTrack>,
    /// Outgoing m-line → the source it carries (keyframe requests come by mid).
    pub out_by_mid: HashMap<Mid, SourceId>,
    /// Free send-only m-lines the client offered (WHEP): filled without renegotiation.
    pub free_slots: Vec<(Mid, Kind)>,
    /// An edge offer awaiting the client's answer.
    pub pending: Option<SdpPendingOffer>,
    /// Next time the Rtc wants a timeout.
    pub next_timeout: Option<Instant>,
    /// Remote addresses that map to this session.
    pub addrs: Vec<SocketAddr>,
    /// Muted state shown to others (audio, video).
    pub muted: (bool, bool),
    /// How tall the subscriber renders each participant's tile.
    pub tiles: crate::tiles::TileHeights,
    /// str0m's latest egress bandwidth estimate toward this peer (TWCC).
    pub bwe_bps: Option<u64>,
    /// Packets were written to its `Rtc` since its last drain (the media
    /// loop drains such sessions once per round, so a subscriber's packets
    /// of one round leave together).
    pub needs_drain: bool,
}

/// With bandwidth estimation on, it starts here toward every subscriber
/// (then TWCC feedback and probing move it): enough for a few low layers.
pub const INITIAL_BWE_KBPS: u64 = 1500;

/// Maps str0m's media kind.
pub fn kind_of(k: MediaKind) -> Kind {
    match k {
        MediaKind::Audio => Kind::Audio,
        MediaKind::Video => Kind::Video,
    }
}

/// Maps to str0m's media kind.
pub fn media_kind(k: Kind) -> MediaKind {
    match k {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}

/// Whether a remote-added m-line is one we receive on (the client sends).
pub fn we_receive(d: Direction) -> bool {
    matches!(d, Direction::RecvOnly | Direction::SendRecv)
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; len];
    // The OS random source failing is not recoverable for a media server.
    getrandom::fill(&mut bytes).expect("OS random source");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// str0m's input for a UDP datagram from `source` to `destination`, or
/// `None` for bytes str0m cannot classify (not STUN, DTLS, RTP or RTCP).
pub fn udp_input(
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    data: &[u8],
) -> Option<str0m::Input<'_>> {
    let contents = data.try_into().ok()?;
    Some(str0m::Input::Receive(
        now,
        str0m::net::Receive {
            proto: str0m::net::Protocol::Udp,
            source,
            destination,
            contents,
        },
    ))
}

impl Peer {
    /// A session without an `Rtc` yet, started at `since_ms` (Unix ms).
    pub fn new(
        key: PeerKey,
        participant: ParticipantId,
        name: Option<String>,
        (conference, since_ms): (ConferenceId, u64),
        role: Role,
        signaling: bool,
    ) -> Self {
        Self {
            key,
            participant,
            name,
            conference,
            role,
            since_ms,
            signaling,
            rtc: None,
            needs_drain: false,
            ufrag: random_token(8),
            ice_pass: random_token(24),
            offered_at: None,
            connected: false,
            sources: HashMap::new(),
            rids: HashMap::new(),
            out: HashMap::new(),
            out_by_mid: HashMap::new(),
            free_slots: Vec::new(),
            pending: None,
            next_timeout: None,
            addrs: Vec::new(),
            muted: (false, false),
            tiles: Default::default(),
            bwe_bps: None,
        }
    }

    /// Creates the `Rtc`: ICE-lite, our one media candidate, RTP mode (the
    /// edge forwards packets, not frames: no reassembly, no re-packetizing,
    /// and the packets can cross octo links as they are), and only codecs
    /// every client here decodes (Opus, VP8, H264; VP9/AV1 are off because
    /// an SFU cannot transcode and not every client, e.g. aiortc, has them).
    pub fn create_rtc(
        &mut self,
        now: Instant,
        advertised: SocketAddr,
        crypto: &Arc<CryptoProvider>,
        cert: &DtlsCert,
        bwe: bool,
    ) -> &mut Rtc {
        let mut rtc = Rtc::builder()
            .set_crypto_provider(crypto.clone())
            .set_dtls_cert(cert.clone())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: self.ufrag.clone(),
                pass: self.ice_pass.clone(),
            })
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .enable_bwe(bwe.then(|| str0m::bwe::Bitrate::kbps(INITIAL_BWE_KBPS)))
            .build(now);
        // The advertised address is a valid socket address; host() only
        // fails for unsupported protocols.
        let cand = Candidate::host(advertised, "udp").expect("udp host candidate");
        rtc.add_local_candidate(cand);
        self.offered_at = Some(now);
        self.rtc.insert(rtc)
    }

    /// Whether an edge offer should be made now. Not before ICE and DTLS
    /// are up: clients that start receivers when DTLS connects (aiortc)
    /// miss m-lines added while the handshake runs.
    pub fn wants_negotiation(&self) -> bool {
        self.role == Role::Member
            && self.connected
            && self.rtc.is_some()
            && self.pending.is_none()
            && self
                .out
                .values()
                .any(|o| matches!(o.state, OutState::ToOpen | OutState::ToStop(_)))
    }
}
