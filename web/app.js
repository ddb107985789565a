// geomesh meeting page. It joins through a selector (POST /v1/join, after
// timing the edges GET /v1/probe-targets names), connects to the edge the
// selector chose over WebSocket signaling (docs/PROTOCOL.md) with one
// RTCPeerConnection, and falls back to the ranked fallbacks when that edge
// cannot be reached. When its edge fails, or asks it to move (drain), it
// joins again through a selector as the same participant (rejoin secret),
// that edge excluded, connects to the new edge, and only then lets the old
// session go. Each remote m-line's msid stream id is the publisher's id.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// State exposed for operators' debugging and for automated tests.
const geomesh = (window.geomesh = {
  pc: null, // the current session's RTCPeerConnection
  ws: null, // the current session's WebSocket
  me: null, // my participant id
  edge: null, // {id, region} of the current edge
  rejoins: 0, // rejoins completed (edge failure or migration)
  roster: new Map(), // participant id -> {id, name, audio_muted, video_muted, edge, region}
  tiles: new Map(), // participant id -> {el, stream}
  errors: [],
  joined: false,
  dominant: null, // participant id of the dominant speaker
  recording: false, // the conference is being recorded (the edge says)
  constraints: {}, // the last video_constraints sent
  selectors: [], // selector base URLs to join through, this page's first
  events: [], // {t: Date.now(), type: 'connected'|'lost'|'migrate', edge, why}
  // Sends what this page wants to receive: {last_n, pinned, max_height,
  // max_heights}; without a height, the tiles' own (layout.js).
  setConstraints: (c) => {
    geomesh.constraints = c;
    sendConstraints(current);
  },
  layout, // {view, pinned, stage, heights} (layout.js)
  setView, // 'gallery' | 'speaker'
  pin, // a participant id onto the stage (null: unpin)
});

let localStream = null;
let meeting = null; // {conference, name, participant, secret}
let current = null; // the Session carrying the meeting
let rejoining = null; // a Promise while a rejoin runs
// Negotiation steps run one after another, in message order.
let chain = Promise.resolve();
const serially = (f) => (chain = chain.then(f).catch(showError));

const CONNECT_TIMEOUT_MS = 8000;
const DISCONNECTED_GRACE_MS = 3000;
const PROBE_SAMPLES = 3;

function showError(e) {
  const msg = e && e.message ? e.message : String(e);
  geomesh.errors.push(msg);
  $('error').textContent = msg;
  $('error').hidden = false;
}

function note(type, edge, why) {
  geomesh.events.push({ t: Date.now(), type, edge, why });
  if (geomesh.events.length > 200) geomesh.events.shift();
}

function setStatus(s) {
  $('status').textContent = s;
}

function where(p) {
  return p && p.edge ? ` · ${p.edge}${p.region ? ' (' + p.region + ')' : ''}` : '';
}

function tileFor(id, local) {
  let t = geomesh.tiles.get(id);
  if (!t) {
    const el = document.createElement('div');
    el.className = 'tile' + (local ? ' local' : '');
    el.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    if (local) video.muted = true;
    const label = document.createElement('span');
    label.className = 'name';
    const muted = document.createElement('span');
    muted.className = 'muted';
    muted.hidden = true;
    el.append(video, label, muted);
    if (!local) el.addEventListener('click', () => pin(id));
    $('grid').append(el);
    t = { el, stream: new MediaStream() };
    video.srcObject = t.stream;
    geomesh.tiles.set(id, t);
    relayout();
  }
  return t;
}

function label(id) {
  const t = geomesh.tiles.get(id);
  if (!t) return;
  if (id === geomesh.me) {
    t.el.querySelector('.name').textContent = ($('name').value || 'me') + ' (you)' + where(geomesh.edge);
    return;
  }
  const p = geomesh.roster.get(id);
  t.el.querySelector('.name').textContent = ((p && p.name) || id) + where(p);
}

function showMuted(id) {
  const p = geomesh.roster.get(id);
  const t = geomesh.tiles.get(id);
  if (!p || !t) return;
  const parts = [];
  if (p.audio_muted) parts.push('mic off');
  if (p.video_muted) parts.push('camera off');
  const m = t.el.querySelector('.muted');
  m.textContent = parts.join(', ');
  m.hidden = parts.length === 0;
}

function addParticipant(p) {
  if (p.id === geomesh.me) return;
  tileFor(p.id);
  label(p.id);
  showMuted(p.id);
}

function removeParticipant(id) {
  const t = geomesh.tiles.get(id);
  if (t && id !== geomesh.me) {
    t.el.remove();
    geomesh.tiles.delete(id);
    forgetTile(id);
  }
}

// ---- the selector --------------------------------------------------------

// fetch() against this page's selector, then the others it named: a
// selector that does not answer is skipped.
// A selector that cannot reach its cluster's majority answers 503 (and a
// hung one never answers): the next selector may be on the majority side.
const SELECTOR_TIMEOUT_MS = 12000;
async function selectorFetch(path, init) {
  const bases = [location.origin, ...geomesh.selectors.filter((s) => s !== location.origin)];
  let last = null;
  for (const base of bases) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), SELECTOR_TIMEOUT_MS);
    try {
      const r = await fetch(base + path, { ...init, signal: ctl.signal });
      if (r.status < 502 || r.status > 504) return r;
      last = r;
    } catch (e) {
      last = e;
    } finally {
      clearTimeout(timer);
    }
  }
  if (last instanceof Response) return last;
  throw last || new Error('no selector answered');
}

// Where the page pretends to be (?location=LAT,LON or ?region=ID).
function pretended() {
  const loc = params.get('location');
  if (loc) {
    const [lat, lon] = loc.split(',').map(Number);
    if (Number.isFinite(lat) && Number.isFinite(lon)) return { location: { lat, lon } };
  }
  if (params.get('region')) return { region: params.get('region') };
  return null;
}

async function timeOnce(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2000);
  const t0 = performance.now();
  try {
    await fetch(url, { cache: 'no-store', mode: 'cors', signal: ctl.signal });
    return performance.now() - t0;
  } finally {
    clearTimeout(timer);
  }
}

// The median of a few round trips to each candidate edge. Skipped when
// the page pretends to be elsewhere: RTTs measured from here would contradict it.
// The probe-target answer also names every selector: learnt before the
// first join, so a page served by a selector cut off from its cluster can
// join through another.
async function probes() {
  let targets = [];
  try {
    const r = await selectorFetch('/v1/probe-targets', { cache: 'no-store' });
    if (r.ok) {
      const answer = await r.json();
      targets = answer.targets || [];
      if (answer.selectors && answer.selectors.length && !geomesh.selectors.length) {
        geomesh.selectors = answer.selectors;
      }
    }
  } catch (e) {
    return [];
  }
  if (pretended()) return [];
  const measured = await Promise.all(
    targets.map(async (t) => {
      const samples = [];
      for (let i = 0; i < PROBE_SAMPLES; i++) {
        try {
          samples.push(await timeOnce(t.probe_url));
        } catch (e) {
          break;
        }
      }
      if (!samples.length) return null;
      samples.sort((a, b) => a - b);
      return { edge: t.edge, rtt_ms: Math.min(10000, samples[samples.length >> 1]) };
    }),
  );
  return measured.filter(Boolean);
}

// Asks a selector where to connect; returns [{edge, token}] best first.
async function place(exclude) {
  const body = { conference: meeting.conference, probes: await probes(), ...(pretended() || {}) };
  if (meeting.name) body.display_name = meeting.name;
  if (meeting.participant) {
    body.participant = meeting.participant;
    body.rejoin_secret = meeting.secret;
  }
  if (exclude.length) body.exclude = exclude.slice(-16);
  const r = await selectorFetch('/v1/join', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`join refused: ${answer.error || r.status}: ${answer.message || ''}`);
  meeting.participant = answer.participant;
  meeting.secret = answer.rejoin_secret;
  if (answer.selectors && answer.selectors.length) geomesh.selectors = answer.selectors;
  return [{ edge: answer.edge, token: answer.token }, ...(answer.fallbacks || [])];
}

// ---- one session on one edge ---------------------------------------------

class Session {
  constructor(candidate) {
    this.edge = candidate.edge; // {id, region, ws_url, …}
    this.token = candidate.token;
    this.ws = null;
    this.pc = null;
    this.done = false; // we ended it, or it was lost
    this.ready = null; // resolves when media is connected
    this.roster = new Map(); // what this session's edge says of the others
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  // Connects; resolves once ICE and DTLS are up, rejects on failure or time-out.
  open() {
    this.ready = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const timer = setTimeout(() => this.fail('no media connection within ' + CONNECT_TIMEOUT_MS / 1000 + ' s'), CONNECT_TIMEOUT_MS);
    this.ready.finally(() => clearTimeout(timer)).catch(() => {});
    const ws = (this.ws = new WebSocket(this.edge.ws_url));
    ws.onopen = () => this.send({ type: 'join', token: this.token, conference: meeting.conference });
    ws.onmessage = (e) => serially(() => this.onMessage(JSON.parse(e.data)));
    ws.onclose = () => this.lost('signaling closed');
    return this.ready;
  }

  // The session failed: before it was up, the connect attempt fails; after,
  // the meeting moves to another edge.
  fail(why) {
    if (this.reject) this.reject(new Error(`${this.edge.id}: ${why}`));
    this.close();
  }

  lost(why) {
    if (this.done) return;
    if (this !== current) return this.fail(why);
    this.close();
    note('lost', this.edge.id, why);
    setStatus('reconnecting (' + why + ')');
    rejoin(this.edge.id, why).catch(showError);
  }

  close() {
    if (this.done) return;
    this.done = true;
    if (this.ws) {
      this.send({ type: 'leave' });
      this.ws.onclose = null;
      this.ws.close();
    }
    if (this.pc) this.pc.close();
  }

  async startMedia() {
    const simulcast = params.get('simulcast') !== '0';
    const pc = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    for (const track of localStream.getTracks()) {
      const init = { direction: 'sendonly', streams: [localStream] };
      if (simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST;
      pc.addTransceiver(track, init);
    }
    pc.ontrack = (ev) => {
      const id = ev.streams[0] ? ev.streams[0].id : 'unknown';
      if (id === geomesh.me) return;
      const t = tileFor(id);
      // One track per kind: a participant that moved edges sends new ones.
      t.stream.getTracks().filter((x) => x.kind === ev.track.kind).forEach((x) => t.stream.removeTrack(x));
      t.stream.addTrack(ev.track);
      ev.track.onended = () => t.stream.removeTrack(ev.track);
      label(id);
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (this === current) setStatus('media ' + state);
      if (state === 'connected' && this.resolve) this.resolve(this);
      if (state === 'failed') this.lost('media connection failed');
      // Consent checks stopped answering (the edge or the path died without
      // closing signaling): a few seconds of that is a failure.
      clearTimeout(this.disconnectTimer);
      if (state === 'disconnected') {
        this.disconnectTimer = setTimeout(() => {
          if (pc.connectionState === 'disconnected') this.lost('media disconnected');
        }, DISCONNECTED_GRACE_MS);
      }
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription.sdp });
  }

  async onMessage(m) {
    if (this.done) return;
    // Each session keeps its own roster; the page shows the current one's.
    const shown = this === current;
    switch (m.type) {
      case 'joined':
        geomesh.me = m.participant;
        this.joinedEdge = { id: m.edge, region: m.region };
        this.roster = new Map(m.participants.filter((p) => p.id !== m.participant).map((p) => [p.id, p]));
        await this.startMedia();
        sendInitialConstraints(this);
        break;
      case 'answer':
        await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
        break;
      case 'offer': {
        await this.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
        const answer = await this.pc.createAnswer();
        await this.pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
        break;
      }
      case 'participant_joined':
        if (m.participant.id === geomesh.me) break;
        this.roster.set(m.participant.id, m.participant);
        if (shown) addParticipant(m.participant);
        break;
      case 'participant_left':
        this.roster.delete(m.participant);
        if (shown) removeParticipant(m.participant);
        break;
      case 'mute': {
        const p = this.roster.get(m.participant);
        if (p) p[m.kind + '_muted'] = m.muted;
        if (shown) showMuted(m.participant);
        break;
      }
      case 'dominant_speaker': {
        if (!shown) break;
        const old = geomesh.tiles.get(geomesh.dominant);
        if (old) old.el.classList.remove('speaking');
        geomesh.dominant = m.participant;
        const t = geomesh.tiles.get(m.participant);
        if (t) t.el.classList.add('speaking');
        relayout(); // in speaker view, the stage follows the speaker
        break;
      }
      case 'migrate':
        if (shown) note('migrate', this.edge.id, m.reason);
        if (shown) rejoin(this.edge.id, 'edge asked to move (' + m.reason + ')', true).catch(showError);
        break;
      case 'error':
        if (m.fatal && !shown) this.fail(`${m.code}: ${m.message}`);
        else if (m.fatal) this.lost(m.code);
        else showError(`${m.code}: ${m.message}`);
        break;
      case 'recording':
        // Every session of this page is in the same conference: the
        // newest word wins, whichever edge said it.
        geomesh.recording = m.active;
        $('recording').hidden = !m.active;
        note('recording', this.edge.id, m.active ? 'started' : 'stopped');
        break;
      case 'pong':
        break;
    }
  }
}

// Makes `s` the meeting's session: its roster replaces the old one.
function adopt(s) {
  const old = current;
  current = s;
  geomesh.pc = s.pc;
  geomesh.ws = s.ws;
  geomesh.edge = s.joinedEdge || { id: s.edge.id, region: s.edge.region };
  geomesh.joined = true;
  geomesh.roster = s.roster;
  for (const id of [...geomesh.tiles.keys()]) {
    if (id !== geomesh.me && !s.roster.has(id)) removeParticipant(id);
  }
  s.roster.forEach(addParticipant);
  const me = tileFor(geomesh.me, true);
  if (!me.stream.getTracks().length) localStream.getTracks().forEach((t) => me.stream.addTrack(t));
  label(geomesh.me);
  $('room').textContent = `${meeting.conference} on ${geomesh.edge.id} (${geomesh.edge.region})`;
  setStatus('media connected');
  note('connected', geomesh.edge.id);
  if (old && old !== s) old.close(); // make before break: the old session goes last
}

// Tries each candidate in turn; resolves with the first connected session.
async function connectAny(candidates, failed) {
  for (const c of candidates) {
    if (failed.has(c.edge.id)) continue;
    const s = new Session(c);
    try {
      return await s.open();
    } catch (e) {
      geomesh.errors.push(e.message);
      failed.add(c.edge.id);
    }
  }
  return null;
}

// Joins through the selector, excluding edges that failed, a few rounds.
async function connectThroughSelector(failed) {
  let pause = 250;
  for (let round = 0; round < 8; round++) {
    let candidates;
    try {
      candidates = await place([...failed]);
    } catch (e) {
      geomesh.errors.push(e.message);
      if (/participant_in_use|bad_rejoin_secret|bad_request|forbidden|unauthorized/.test(e.message)) throw e;
      candidates = null;
    }
    if (candidates) {
      const s = await connectAny(candidates, failed);
      if (s) return s;
    }
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 4000);
  }
  throw new Error('no edge could be reached');
}

// The current edge failed (or asked us to move): join again elsewhere.
function rejoin(edgeId, why, keepOld) {
  if (rejoining) return rejoining;
  const failed = new Set([edgeId]);
  rejoining = (async () => {
    try {
      const s = await connectThroughSelector(failed);
      if (!keepOld && current && !current.done) current.close();
      adopt(s);
      geomesh.rejoins += 1;
    } finally {
      rejoining = null;
    }
  })();
  return rejoining;
}

// ---- joining and leaving -------------------------------------------------

// Simulcast (on unless ?simulcast=0): three encodings, lowest first, so the
// edge can give each subscriber the layer that fits its tile and bandwidth.
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

async function join(conference, name) {
  $('error').hidden = true;
  meeting = { conference, name, participant: null, secret: null };
  $('join-form').hidden = true;
  $('meeting').hidden = false;
  setStatus('joining');
  const simulcast = params.get('simulcast') !== '0';
  const size = simulcast ? { width: 1280, height: 720 } : { width: 640, height: 480 };
  localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: size });
  let s;
  if (params.get('token')) {
    // A join link with its own token (an application that placed the
    // participant itself): connect to the edge it names, this page's origin
    // unless ?ws= says otherwise.
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = params.get('ws') || `${proto}://${location.host}/v1/rtc`;
    s = await connectAny([{ edge: { id: 'this edge', region: '', ws_url: ws }, token: params.get('token') }], new Set());
    if (!s) throw new Error('could not connect with the given token');
  } else {
    s = await connectThroughSelector(new Set());
  }
  adopt(s);
}

function leave() {
  if (current) current.close();
  current = null;
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  for (const id of [...geomesh.tiles.keys()]) {
    geomesh.tiles.get(id).el.remove();
    geomesh.tiles.delete(id);
  }
  geomesh.roster = new Map();
  geomesh.pc = geomesh.ws = null;
  geomesh.joined = false;
  $('meeting').hidden = true;
  $('join-form').hidden = false;
  setStatus('not connected');
}

function toggle(kind, button, onLabel, offLabel) {
  if (!localStream) return;
  const tracks = kind === 'audio' ? localStream.getAudioTracks() : localStream.getVideoTracks();
  const muted = tracks.some((t) => t.enabled);
  tracks.forEach((t) => (t.enabled = !muted));
  button.textContent = muted ? offLabel : onLabel;
  if (current) current.send({ type: 'mute', kind, muted });
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  join($('conference').value.trim(), $('name').value.trim()).catch(showError);
});
$('leave').addEventListener('click', leave);
$('mute-audio').addEventListener('click', (e) => toggle('audio', e.target, 'Mute microphone', 'Unmute microphone'));
$('mute-video').addEventListener('click', (e) => toggle('video', e.target, 'Stop camera', 'Start camera'));
setInterval(() => current && current.send({ type: 'ping' }), 20000);

// ?lastN=N&maxHeight=H set what this page receives from the start (and
// the tile heights, layout.js, unless maxHeight fixes one).
function sendInitialConstraints(s) {
  const c = { ...geomesh.constraints };
  if (params.get('lastN')) c.last_n = Number(params.get('lastN'));
  if (params.get('maxHeight')) c.max_height = Number(params.get('maxHeight'));
  geomesh.constraints = c;
  sendConstraints(s);
}

// ?conference=X&name=Y&autojoin=1 joins at once (links and automation).
if (params.get('conference')) $('conference').value = params.get('conference');
if (params.get('name')) $('name').value = params.get('name');
if (params.get('autojoin') === '1' && params.get('conference')) {
  join($('conference').value, $('name').value).catch(showError);
}
