// The cluster status page: a world map of regions and edges coloured by
// health and load, octo links with their RTT, and tables of edges and
// selectors, refreshed every two seconds from this selector's
// GET /v1/status. `window.geomeshStatus` holds the last answer (tests).
'use strict';

const W = 1000;
const H = 500; // the whole globe; the map's view crops the poles
const NS = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

window.geomeshStatus = { status: null, updates: 0, errors: 0 };

function xy(lat, lon) {
  return [((lon + 180) / 360) * W, ((90 - lat) / 180) * H];
}

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function health(e) {
  if (!e.registered) return 'unregistered';
  if (!e.healthy) return 'down';
  if (e.draining || (e.stress || 0) >= 0.5) return 'busy';
  return 'up';
}

function uptime(s) {
  if (s === null || s === undefined) return '-';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// Edges of one region sit on a small circle around it.
function edgePositions(st) {
  const regions = new Map(st.regions.map((r) => [r.id, r]));
  const byRegion = new Map();
  for (const e of st.edges) {
    if (!byRegion.has(e.region)) byRegion.set(e.region, []);
    byRegion.get(e.region).push(e);
  }
  const pos = new Map();
  for (const [rid, edges] of byRegion) {
    const r = regions.get(rid);
    if (!r) continue;
    const [cx, cy] = xy(r.lat, r.lon);
    edges.forEach((e, i) => {
      const a = (2 * Math.PI * i) / edges.length;
      const d = edges.length > 1 ? 11 : 0;
      pos.set(e.id, [cx + d * Math.cos(a), cy + d * Math.sin(a)]);
    });
  }
  return pos;
}

function drawMap(st) {
  const pos = edgePositions(st);
  const regions = $('regions');
  regions.replaceChildren();
  for (const r of st.regions) {
    const [x, y] = xy(r.lat, r.lon);
    const g = el('g', { class: 'region-mark', 'data-region': r.id });
    g.append(el('rect', { class: 'region', x: x - 18, y: y - 18, width: 36, height: 36, rx: 6 }));
    g.append(el('text', { class: 'region-label', x: x - 18, y: y + 29 }, r.id));
    regions.append(g);
  }
  const links = $('links');
  links.replaceChildren();
  const drawn = new Set();
  for (const a of st.edges) {
    for (const l of a.links || []) {
      const key = [a.id, l.edge].sort().join(' ');
      if (drawn.has(key) || !pos.has(a.id) || !pos.has(l.edge)) continue;
      drawn.add(key);
      const [x1, y1] = pos.get(a.id);
      const [x2, y2] = pos.get(l.edge);
      const down = l.state === 'down';
      links.append(el('line', {
        class: down ? 'link down' : 'link', x1, y1, x2, y2, 'data-link': key,
      }));
      if (!down) {
        links.append(el('text', { class: 'link-label', x: (x1 + x2) / 2 + 3, y: (y1 + y2) / 2 - 3 },
          `${l.rtt_ms.toFixed(0)} ms`));
      }
    }
  }
  const edges = $('edges');
  edges.replaceChildren();
  for (const e of st.edges) {
    if (!pos.has(e.id)) continue;
    const [x, y] = pos.get(e.id);
    const h = health(e);
    const g = el('g', { class: `edge ${h}`, 'data-edge': e.id, 'data-health': h });
    const r = 5 + Math.min(12, Math.sqrt(e.participants || 0) * 2);
    const c = el('circle', { cx: x, cy: y, r });
    c.append(el('title', {}, `${e.id} (${e.region}): ${h}, ${e.participants} participants, stress ${
      (e.stress ?? 0).toFixed(2)}`));
    g.append(c);
    edges.append(g);
  }
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.append(td);
}

function drawTables(st) {
  const edges = $('edge-table').querySelector('tbody');
  edges.replaceChildren();
  for (const e of st.edges) {
    const tr = document.createElement('tr');
    const h = health(e);
    tr.className = h;
    tr.dataset.edge = e.id;
    cell(tr, e.id);
    cell(tr, e.region);
    cell(tr, h);
    cell(tr, e.draining ? (e.migrate ? 'migrating' : 'draining') : '-');
    cell(tr, e.stress === null || e.stress === undefined ? '-' : e.stress.toFixed(2));
    cell(tr, String(e.participants));
    cell(tr, String(e.conferences));
    cell(tr, e.media || '-');
    cell(tr, e.about ? e.about.version : '-');
    cell(tr, uptime(e.uptime_s));
    edges.append(tr);
  }
  const sels = $('selector-table').querySelector('tbody');
  sels.replaceChildren();
  for (const s of st.selectors) {
    const tr = document.createElement('tr');
    tr.dataset.selector = s.id;
    const h = s.health;
    tr.className = h ? h.raft_role : 'unreachable';
    cell(tr, s.id);
    cell(tr, h ? h.raft_role : `unreachable (${s.error || '?'})`);
    cell(tr, h ? String(h.term) : '-');
    cell(tr, h && h.last_log_index !== null ? String(h.last_log_index) : '-');
    cell(tr, h && h.last_applied !== null ? String(h.last_applied) : '-');
    cell(tr, s.lag === null || s.lag === undefined ? '-' : String(s.lag));
    cell(tr, s.clock_offset_ms === null || s.clock_offset_ms === undefined ? '-' : `${s.clock_offset_ms} ms`);
    cell(tr, s.api);
    sels.append(tr);
  }
}

async function refresh() {
  try {
    const r = await fetch('/v1/status', { cache: 'no-store' });
    if (!r.ok) throw new Error(`GET /v1/status: ${r.status}`);
    const st = await r.json();
    drawMap(st);
    drawTables(st);
    const up = st.edges.filter((e) => e.registered && e.healthy).length;
    $('summary').textContent = `${st.cluster}: ${up} of ${st.edges.length} edges up, ` +
      `leader ${st.leader || 'NONE'} — as ${st.selector} sees it, ${new Date(st.at_ms).toLocaleTimeString()}`;
    $('error').hidden = true;
    window.geomeshStatus.status = st;
    window.geomeshStatus.updates += 1;
  } catch (e) {
    window.geomeshStatus.errors += 1;
    $('error').textContent = `${e.message} (retrying)`;
    $('error').hidden = false;
  }
}

async function start() {
  try {
    const r = await fetch('/status/land.path');
    if (r.ok) $('land').setAttribute('d', await r.text());
  } catch (_) {
    // The map works without land.
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
