// The meeting page's layout, and the video constraints that follow it.
//
// Gallery view shows everyone in equal tiles; speaker view puts one
// participant on the stage (the one clicked, else the dominant speaker,
// else whoever was there) above a filmstrip of the others. Either way each
// remote tile asks the edge for the smallest simulcast layer that fills it
// (its height in device pixels), as Jitsi's receiver
// constraints and LiveKit's adaptive stream do, so a filmstrip of nine
// does not pull nine 720p streams. A height the page is told to use
// (`?maxHeight=`, or `max_height`/`max_heights` given to
// `geomesh.setConstraints`) wins: then no tile heights are sent.
//
// Loaded before app.js; its functions read app.js's globals (`geomesh`,
// `current`) when called.
'use strict';

// Tiles move for a moment after a change (a new row, the stage growing):
// send the heights once they have settled, not every step.
const LAYOUT_SETTLE_MS = 200;

const layout = {
  view: 'gallery', // or 'speaker'
  pinned: null, // the participant clicked onto the stage
  stage: null, // the participant on the stage (speaker view only)
  heights: {}, // remote participant id -> tile height, as last measured
  timer: null,
  lastStage: null, // the stage before this layout
};

function remoteIds() {
  return [...geomesh.tiles.keys()].filter((id) => id !== geomesh.me);
}

function measureHeights() {
  const dpr = window.devicePixelRatio || 1;
  const out = {};
  for (const id of remoteIds()) {
    const h = Math.ceil(geomesh.tiles.get(id).el.getBoundingClientRect().height * dpr);
    if (h > 0) out[id] = h;
  }
  return out;
}

// The video_constraints for the layout as it stands: what the page was
// told (URL, setConstraints) plus the tile heights and the pinned stage.
// The most common height goes as `max_height` and only the tiles that
// differ (the stage) as `max_heights`: the edge keeps 64 of those, and a
// gallery of a hundred must still say how small its tiles are.
function constraintsMessage() {
  const c = { ...geomesh.constraints };
  if (!('max_height' in c) && !('max_heights' in c)) {
    layout.heights = measureHeights();
    const count = new Map();
    for (const h of Object.values(layout.heights)) count.set(h, (count.get(h) || 0) + 1);
    if (count.size) {
      const common = [...count].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
      c.max_height = common;
      const differ = Object.entries(layout.heights).filter(([, h]) => h !== common);
      if (differ.length) c.max_heights = Object.fromEntries(differ);
    }
  }
  if (layout.view === 'speaker' && layout.pinned) {
    // Pinned also for last-N: the stage is forwarded whoever speaks.
    c.pinned = [...new Set([...(c.pinned || []), layout.pinned])];
  }
  return c;
}

// Sends the constraints on session `s` if they differ from what it last
// sent (each session, so a new edge after a move hears them too).
function sendConstraints(s) {
  if (!s) return;
  const c = constraintsMessage();
  const text = JSON.stringify(c);
  if (text === s.sentConstraints || (s.sentConstraints === undefined && text === '{}')) return;
  s.sentConstraints = text;
  s.send({ type: 'video_constraints', ...c });
}

function settleThenSend() {
  clearTimeout(layout.timer);
  layout.timer = setTimeout(() => sendConstraints(current), LAYOUT_SETTLE_MS);
}

// Arranges the tiles for the view; the heights follow once they settle.
function relayout() {
  const ids = remoteIds();
  layout.stage = null;
  if (layout.view === 'speaker') {
    // When the dominant speaker is this page's user, the stage stays.
    const keep = [layout.pinned, geomesh.dominant, layout.lastStage].find((id) => id && ids.includes(id));
    layout.stage = keep || ids[0] || null;
    layout.lastStage = layout.stage;
  }
  document.getElementById('grid').classList.toggle('speaker', layout.view === 'speaker');
  for (const [id, t] of geomesh.tiles) t.el.classList.toggle('stage', id === layout.stage);
  settleThenSend();
}

function setView(view) {
  layout.view = view === 'speaker' ? 'speaker' : 'gallery';
  document.getElementById('view').textContent = layout.view === 'speaker' ? 'Gallery view' : 'Speaker view';
  relayout();
}

// A click on a remote tile puts it on the stage (switching to speaker
// view); a click on the pinned stage unpins it.
function pin(id) {
  layout.pinned = id && id !== layout.pinned ? id : null;
  if (layout.pinned) setView('speaker');
  else relayout();
}

function forgetTile(id) {
  if (layout.pinned === id) layout.pinned = null;
  relayout();
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('view').addEventListener('click', () => setView(layout.view === 'speaker' ? 'gallery' : 'speaker'));
  // A resized window (or a new row of tiles) changes every tile's height.
  new ResizeObserver(settleThenSend).observe(document.getElementById('grid'));
  if (new URLSearchParams(location.search).get('view') === 'speaker') setView('speaker');
});
