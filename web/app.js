// geomesh meeting page: WebSocket signaling (docs/PROTOCOL.md) + one
// RTCPeerConnection. The edge sends one m-line per remote source; the msid
// stream id of each is the publishing participant's id.
'use strict';

const $ = (id) => document.getElementById(id);

// State exposed for operators' debugging and for automated tests.
const geomesh = (window.geomesh = {
  pc: null,
  ws: null,
  me: null,
  roster: new Map(), // participant id -> {id, name, audio_muted, video_muted}
  tiles: new Map(), // participant id -> {el, stream}
  errors: [],
  joined: false,
  dominant: null, // participant id of the dominant speaker
  constraints: {}, // the last video_constraints sent
  // Sends what this page wants to receive: {last_n, pinned, max_height}.
  setConstraints: (c) => {
    geomesh.constraints = c;
    send({ type: 'video_constraints', ...c });
  },
});

let localStream = null;
// Negotiation steps run one after another, in message order.
let chain = Promise.resolve();
const serially = (f) => (chain = chain.then(f).catch(showError));

function showError(e) {
  const msg = e && e.message ? e.message : String(e);
  geomesh.errors.push(msg);
  $('error').textContent = msg;
  $('error').hidden = false;
}

function setStatus(s) {
  $('status').textContent = s;
}

function send(msg) {
  if (geomesh.ws && geomesh.ws.readyState === WebSocket.OPEN) geomesh.ws.send(JSON.stringify(msg));
}

function tileFor(id, name, local) {
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
    $('grid').append(el);
    t = { el, stream: new MediaStream() };
    video.srcObject = t.stream;
    geomesh.tiles.set(id, t);
  }
  t.el.querySelector('.name').textContent = name || id;
  return t;
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
  geomesh.roster.set(p.id, p);
  tileFor(p.id, p.name);
  showMuted(p.id);
}

function removeParticipant(id) {
  geomesh.roster.delete(id);
  const t = geomesh.tiles.get(id);
  if (t) {
    t.el.remove();
    geomesh.tiles.delete(id);
  }
}

async function token(conference, name) {
  const q = new URLSearchParams({ conference });
  if (name) q.set('name', name);
  const r = await fetch('/dev/token?' + q);
  if (!r.ok) throw new Error('no join token: ' + r.status + ' ' + (await r.text()));
  return r.json();
}

// Simulcast (on unless ?simulcast=0): three encodings, lowest first, so the
// edge can give each subscriber the layer that fits its tile and bandwidth.
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

async function startMedia() {
  const simulcast = params.get('simulcast') !== '0';
  const size = simulcast ? { width: 1280, height: 720 } : { width: 640, height: 480 };
  localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: size });
  const me = tileFor(geomesh.me, ($('name').value || 'me') + ' (you)', true);
  localStream.getTracks().forEach((t) => me.stream.addTrack(t));

  const pc = (geomesh.pc = new RTCPeerConnection({ iceServers: [] }));
  for (const track of localStream.getTracks()) {
    const init = { direction: 'sendonly', streams: [localStream] };
    if (simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST;
    pc.addTransceiver(track, init);
  }
  pc.ontrack = (ev) => {
    const id = ev.streams[0] ? ev.streams[0].id : 'unknown';
    const p = geomesh.roster.get(id);
    const t = tileFor(id, p ? p.name : id);
    t.stream.addTrack(ev.track);
    ev.track.onended = () => t.stream.removeTrack(ev.track);
  };
  pc.onconnectionstatechange = () => setStatus('media ' + pc.connectionState);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  send({ type: 'offer', sdp: pc.localDescription.sdp });
}

async function onMessage(m) {
  switch (m.type) {
    case 'joined':
      geomesh.me = m.participant;
      geomesh.joined = true;
      $('room').textContent = `${m.conference} on ${m.edge}`;
      m.participants.forEach(addParticipant);
      setStatus('joined');
      await startMedia();
      sendInitialConstraints();
      break;
    case 'dominant_speaker': {
      const old = geomesh.tiles.get(geomesh.dominant);
      if (old) old.el.classList.remove('speaking');
      geomesh.dominant = m.participant;
      const t = geomesh.tiles.get(m.participant);
      if (t) t.el.classList.add('speaking');
      break;
    }
    case 'answer':
      await geomesh.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      break;
    case 'offer': {
      await geomesh.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      const answer = await geomesh.pc.createAnswer();
      await geomesh.pc.setLocalDescription(answer);
      send({ type: 'answer', sdp: geomesh.pc.localDescription.sdp });
      break;
    }
    case 'participant_joined':
      addParticipant(m.participant);
      break;
    case 'participant_left':
      removeParticipant(m.participant);
      break;
    case 'mute': {
      const p = geomesh.roster.get(m.participant);
      if (p) {
        p[m.kind + '_muted'] = m.muted;
        showMuted(m.participant);
      }
      break;
    }
    case 'error':
      showError(`${m.code}: ${m.message}`);
      break;
    case 'pong':
      break;
  }
}

async function join(conference, name) {
  $('error').hidden = true;
  const t = await token(conference, name);
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = (geomesh.ws = new WebSocket(`${proto}://${location.host}/v1/rtc`));
  ws.onopen = () => send({ type: 'join', token: t.token, conference });
  ws.onmessage = (e) => serially(() => onMessage(JSON.parse(e.data)));
  ws.onclose = () => {
    setStatus('disconnected');
    geomesh.joined = false;
  };
  $('join-form').hidden = true;
  $('meeting').hidden = false;
}

function leave() {
  send({ type: 'leave' });
  if (geomesh.ws) geomesh.ws.close();
  if (geomesh.pc) geomesh.pc.close();
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  for (const id of [...geomesh.tiles.keys()]) removeParticipant(id);
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
  send({ type: 'mute', kind, muted });
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  join($('conference').value.trim(), $('name').value.trim()).catch(showError);
});
$('leave').addEventListener('click', leave);
$('mute-audio').addEventListener('click', (e) => toggle('audio', e.target, 'Mute microphone', 'Unmute microphone'));
$('mute-video').addEventListener('click', (e) => toggle('video', e.target, 'Stop camera', 'Start camera'));
setInterval(() => send({ type: 'ping' }), 20000);

// ?lastN=N&maxHeight=H set what this page receives from the start.
function sendInitialConstraints() {
  const c = {};
  if (params.get('lastN')) c.last_n = Number(params.get('lastN'));
  if (params.get('maxHeight')) c.max_height = Number(params.get('maxHeight'));
  if (Object.keys(c).length) geomesh.setConstraints(c);
}

// ?conference=X&name=Y&autojoin=1 joins at once (links and automation).
const params = new URLSearchParams(location.search);
if (params.get('conference')) $('conference').value = params.get('conference');
if (params.get('name')) $('name').value = params.get('name');
if (params.get('autojoin') === '1' && params.get('conference')) {
  join($('conference').value, $('name').value).catch(showError);
}
