// The peer benchmark's mediasoup server (issue #19, scripts/bench-peers.sh).
//
// mediasoup is a library without signaling: every application writes its
// own. This one speaks the subset of the Janus API (WebSocket,
// `janus-protocol`) that VideoRoom clients use, so `geomesh loadgen` drives
// it with the adapter it already has for Janus (loadgen/src/janus.rs)
// instead of a second one: sessions, one VideoRoom-like handle each, a
// publisher's `join` + `publish` (our offer, mediasoup's answer), a
// subscriber's `join` (mediasoup's offer) + `start` (our answer), and
// `configure` with a simulcast `substream` (a consumer's preferred layer).
//
// SDP is translated to mediasoup's RTP parameters here, as mediasoup-client
// does in a browser. One worker (one core: mediasoup's unit of scale), one
// router per room, one WebRtcTransport per handle. Consumers are created
// for capabilities without transport-cc and REMB, as Janus has no
// bandwidth estimation either: each subscriber gets the layer it asks for.
//
//   node server.mjs --modules DIR --addr 10.77.0.1 --port 8288 [--pid-file F]
//
// DIR holds node_modules (mediasoup, ws, sdp-transform) from
// build-worker.sh; MEDIASOUP_WORKER_BIN names the worker binary.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const require = createRequire(join(args.modules ?? '.', 'node_modules', 'x.js'));
const mediasoup = require('mediasoup');
const { WebSocketServer } = require('ws');
const sdpTransform = require('sdp-transform');

const ADDR = args.addr ?? '127.0.0.1';
const PORT = Number(args.port ?? 8288);
const [MIN_PORT, MAX_PORT] = (args['rtc-ports'] ?? '40000-49999').split('-').map(Number);

const MEDIA_CODECS = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];
// VideoRoom's error codes that clients act on.
const NO_SUCH_FEED = 428;
const NO_SUCH_ROOM = 426;
const INVALID_REQUEST = 499;

const worker = await mediasoup.createWorker({
  logLevel: 'warn',
  rtcMinPort: MIN_PORT,
  rtcMaxPort: MAX_PORT,
});
worker.on('died', () => {
  console.error('mediasoup worker died');
  process.exit(1);
});
if (args['pid-file']) writeFileSync(args['pid-file'], `${worker.pid}\n`);

/** room id → { router, feeds: Map<feed id, { producers: Producer[] }> } */
const rooms = new Map();
let nextId = 1;
const newId = () => nextId++;

async function room(id) {
  let r = rooms.get(id);
  if (!r) {
    r = { router: await worker.createRouter({ mediaCodecs: MEDIA_CODECS }), feeds: new Map() };
    rooms.set(id, r);
  }
  return r;
}

/** What a receiver here can take: the router's codecs and extensions,
 *  without bandwidth estimation. */
function receiverCaps(router) {
  const caps = structuredClone(router.rtpCapabilities);
  for (const c of caps.codecs) {
    c.rtcpFeedback = (c.rtcpFeedback ?? []).filter(
      (f) => f.type !== 'transport-cc' && f.type !== 'goog-remb',
    );
  }
  caps.headerExtensions = caps.headerExtensions.filter(
    (e) => !/transport-wide-cc|abs-send-time/.test(e.uri),
  );
  return caps;
}

async function newTransport(router) {
  return router.createWebRtcTransport({
    listenIps: [{ ip: ADDR }],
    enableUdp: true,
    enableTcp: false,
    preferUdp: true,
  });
}

function remoteDtls(sdp, setupIfAnswer) {
  const media = sdp.media[0] ?? {};
  const fp = media.fingerprint ?? sdp.fingerprint;
  if (!fp) throw new Error('no DTLS fingerprint');
  const setup = media.setup ?? sdp.setup ?? setupIfAnswer;
  // The remote's role: an offer's actpass is answered here as passive
  // (we are the DTLS server, it the client).
  const role = setup === 'passive' ? 'server' : 'client';
  return { role, fingerprints: [{ algorithm: fp.type, value: fp.hash }] };
}

/** The transport's half of an m-section: ICE-lite, DTLS, candidates. */
function transportLines(t, setup) {
  const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256');
  const lines = [
    `a=ice-ufrag:${t.iceParameters.usernameFragment}`,
    `a=ice-pwd:${t.iceParameters.password}`,
    `a=fingerprint:${fp.algorithm} ${fp.value}`,
    `a=setup:${setup}`,
  ];
  for (const c of t.iceCandidates) {
    lines.push(`a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.ip} ${c.port} typ ${c.type}`);
  }
  lines.push('a=end-of-candidates', 'a=rtcp-mux', 'a=rtcp-rsize');
  return lines;
}

function codecLines(codecs) {
  const lines = [];
  for (const c of codecs) {
    const [, name] = c.mimeType.split('/');
    lines.push(`a=rtpmap:${c.payloadType} ${name}/${c.clockRate}${c.channels > 1 ? `/${c.channels}` : ''}`);
    const params = Object.entries(c.parameters ?? {}).map(([k, v]) => `${k}=${v}`);
    if (params.length) lines.push(`a=fmtp:${c.payloadType} ${params.join(';')}`);
    for (const f of c.rtcpFeedback ?? []) {
      lines.push(`a=rtcp-fb:${c.payloadType} ${f.type}${f.parameter ? ` ${f.parameter}` : ''}`);
    }
  }
  return lines;
}

/**
 * The lines every m-section of ours starts with: media line on the
 * transport's port, address, mid, direction, the transport's ICE/DTLS
 * lines, codecs and header extensions of `rtp` (mediasoup RTP parameters).
 */
function mediaSection(kind, mid, direction, t, setup, rtp) {
  const port = t.iceCandidates[0]?.port ?? 9;
  return [
    `m=${kind} ${port} UDP/TLS/RTP/SAVPF ${rtp.codecs.map((c) => c.payloadType).join(' ')}`,
    `c=IN IP4 ${ADDR}`,
    `a=mid:${mid}`,
    `a=${direction}`,
    ...transportLines(t, setup),
    ...codecLines(rtp.codecs),
    ...rtp.headerExtensions.map((e) => `a=extmap:${e.id} ${e.uri}`),
  ];
}

function sessionLines(mids) {
  return [
    'v=0',
    `o=mediasoup-bench ${Date.now()} 1 IN IP4 ${ADDR}`,
    's=-',
    't=0 0',
    'a=ice-lite',
    `a=group:BUNDLE ${mids.join(' ')}`,
    'a=msid-semantic: WMS *',
  ];
}

/** A publisher's offered m-section as mediasoup RTP parameters, or null
 *  when it carries nothing the router takes. */
function producerParameters(m, router) {
  const supported = router.rtpCapabilities;
  const codecs = [];
  for (const rtp of m.rtp ?? []) {
    const mimeType = `${m.type}/${rtp.codec}`.toLowerCase();
    const fmtp = (m.fmtp ?? []).find((f) => f.payload === rtp.payload);
    const parameters = fmtp ? sdpTransform.parseParams(fmtp.config) : {};
    const known = supported.codecs.find((c) => c.mimeType.toLowerCase() === mimeType);
    if (!known && mimeType !== `${m.type}/rtx`) continue;
    codecs.push({
      mimeType: `${m.type}/${rtp.codec}`,
      payloadType: rtp.payload,
      clockRate: rtp.rate,
      ...(rtp.encoding ? { channels: Number(rtp.encoding) } : {}),
      parameters,
      rtcpFeedback: (m.rtcpFb ?? [])
        .filter((f) => f.payload === rtp.payload || f.payload === '*')
        .map((f) => ({ type: f.type, parameter: f.subtype ?? '' })),
    });
  }
  // Keep the first media codec and the RTX that repairs it.
  const media = codecs.find((c) => !/\/rtx$/i.test(c.mimeType));
  if (!media) return null;
  const rtx = codecs.find((c) => /\/rtx$/i.test(c.mimeType) && Number(c.parameters.apt) === media.payloadType);
  const uris = new Set(supported.headerExtensions.filter((e) => e.kind === m.type).map((e) => e.uri));
  const headerExtensions = (m.ext ?? [])
    .filter((e) => uris.has(e.uri))
    .map((e) => ({ uri: e.uri, id: e.value }));
  let encodings;
  const rids = (m.rids ?? []).filter((r) => r.direction === 'send');
  if (rids.length) {
    // Listed low to high in our clients' SDP, as mediasoup wants them.
    encodings = rids.map((r) => ({ rid: String(r.id) }));
  } else {
    const ssrcs = [...new Set((m.ssrcs ?? []).map((s) => s.id))];
    const fid = (m.ssrcGroups ?? []).find((g) => g.semantics === 'FID');
    const [primary, repair] = fid ? fid.ssrcs.split(' ').map(Number) : [ssrcs[0]];
    encodings = [{ ssrc: primary, ...(repair && rtx ? { rtx: { ssrc: repair } } : {}) }];
  }
  const cname = (m.ssrcs ?? []).find((s) => s.attribute === 'cname')?.value;
  return {
    mid: String(m.mid),
    codecs: rtx ? [media, rtx] : [media],
    headerExtensions,
    encodings,
    rtcp: { cname, reducedSize: true },
  };
}

/** Publishes an offer on a publisher handle; mediasoup's answer. */
async function publish(h, offerSdp) {
  const r = await room(h.room);
  const offer = sdpTransform.parse(offerSdp);
  const t = await newTransport(r.router);
  h.transports.push(t);
  await t.connect({ dtlsParameters: remoteDtls(offer) });
  const out = sessionLines(offer.media.map((m) => String(m.mid)));
  const producers = [];
  for (const m of offer.media) {
    const params = producerParameters(m, r.router);
    if (!params) {
      out.push(`m=${m.type} 0 ${m.protocol} ${m.payloads}`, `a=mid:${m.mid}`, 'a=inactive');
      continue;
    }
    producers.push(await t.produce({ kind: m.type, rtpParameters: params }));
    out.push(...mediaSection(m.type, m.mid, 'recvonly', t, 'passive', params));
    if (params.encodings[0].rid) {
      const rids = params.encodings.map((e) => e.rid);
      out.push(...rids.map((rid) => `a=rid:${rid} recv`), `a=simulcast:recv ${rids.join(';')}`);
    }
  }
  r.feeds.set(h.feed, { producers, display: h.display });
  h.producers = producers;
  return `${out.join('\r\n')}\r\n`;
}

/** Consumers of `feeds` on a subscriber handle; mediasoup's offer. */
async function subscribe(h, feeds) {
  const r = rooms.get(h.room);
  if (!r) return { error_code: NO_SUCH_ROOM, error: `No such room (${h.room})` };
  const missing = feeds.find((f) => !r.feeds.has(f));
  if (missing !== undefined) return { error_code: NO_SUCH_FEED, error: `No such feed (${missing})` };
  const t = await newTransport(r.router);
  h.transports.push(t);
  h.transport = t;
  const caps = receiverCaps(r.router);
  const consumers = [];
  const streams = []; // as Janus's `attached` event lists them
  for (const f of feeds) {
    const feed = r.feeds.get(f);
    for (const p of feed.producers) {
      const c = await t.consume({ producerId: p.id, rtpCapabilities: caps, paused: true });
      consumers.push(c);
      streams.push({ mid: c.rtpParameters.mid, type: c.kind, feed_id: f, feed_display: feed.display });
    }
  }
  h.consumers = consumers;
  const out = sessionLines(consumers.map((c) => c.rtpParameters.mid));
  for (const c of consumers) {
    const p = c.rtpParameters;
    const enc = p.encodings[0];
    const stream = `feed-${c.producerId.slice(0, 8)}`;
    out.push(
      ...mediaSection(c.kind, p.mid, 'sendonly', t, 'actpass', p),
      `a=msid:${stream} ${c.id}`,
    );
    if (enc.rtx) out.push(`a=ssrc-group:FID ${enc.ssrc} ${enc.rtx.ssrc}`);
    for (const s of [enc.ssrc, enc.rtx?.ssrc].filter(Boolean)) {
      out.push(`a=ssrc:${s} cname:${p.rtcp.cname}`, `a=ssrc:${s} msid:${stream} ${c.id}`);
    }
  }
  return { sdp: `${out.join('\r\n')}\r\n`, streams };
}

async function start(h, answerSdp) {
  const answer = sdpTransform.parse(answerSdp);
  await h.transport.connect({ dtlsParameters: remoteDtls(answer, 'active') });
  await Promise.all(h.consumers.map((c) => c.resume()));
}

async function configure(h, streams) {
  for (const s of streams ?? []) {
    const c = (h.consumers ?? []).find((x) => x.rtpParameters.mid === String(s.mid));
    if (c && c.type === 'simulcast' && Number.isInteger(s.substream)) {
      await c.setPreferredLayers({ spatialLayer: s.substream });
    }
  }
}

function closeHandle(h) {
  for (const t of h.transports) t.close();
  const r = rooms.get(h.room);
  if (r && h.feed !== undefined && r.feeds.get(h.feed)?.producers === h.producers) r.feeds.delete(h.feed);
}

/** One VideoRoom request on handle `h`: the plugin's data and a JSEP. */
async function videoroom(h, body, jsep) {
  switch (body.request) {
    case 'create':
      await room(body.room);
      return { data: { videoroom: 'created', room: body.room } };
    case 'join':
      h.room = body.room;
      if (body.ptype === 'publisher') {
        await room(body.room);
        Object.assign(h, { feed: body.id, display: body.display });
        return { data: { videoroom: 'joined', room: body.room, id: body.id } };
      }
      if (body.ptype === 'subscriber') {
        const r = await subscribe(h, (body.streams ?? []).map((s) => s.feed));
        if (r.error_code) return { data: { videoroom: 'event', ...r } };
        return { data: { videoroom: 'attached', room: body.room, streams: r.streams }, jsep: { type: 'offer', sdp: r.sdp } };
      }
      break;
    case 'publish':
      if (jsep?.type === 'offer' && h.feed !== undefined) {
        const sdp = await publish(h, jsep.sdp);
        return { data: { videoroom: 'event', configured: 'ok' }, jsep: { type: 'answer', sdp } };
      }
      break;
    case 'start':
      if (jsep?.type === 'answer' && h.transport) {
        await start(h, jsep.sdp);
        return { data: { videoroom: 'event', started: 'ok' } };
      }
      break;
    case 'configure':
      await configure(h, body.streams);
      return { data: { videoroom: 'event', configured: 'ok' } };
    default:
  }
  return { data: { videoroom: 'event', error_code: INVALID_REQUEST, error: `bad request ${body.request}` } };
}

const wss = new WebSocketServer({ host: ADDR, port: PORT, handleProtocols: () => 'janus-protocol' });
wss.on('connection', (ws) => {
  /** session id → Map<handle id, handle> */
  const sessions = new Map();
  const send = (v) => ws.send(JSON.stringify(v));
  // Requests of one socket are handled in order, as Janus does.
  let queue = Promise.resolve();
  ws.on('message', (raw) => {
    queue = queue.then(() => onMessage(raw)).catch((e) => console.error('request failed:', e));
  });
  ws.on('close', () => {
    for (const handles of sessions.values()) for (const h of handles.values()) closeHandle(h);
    sessions.clear();
  });
  async function onMessage(raw) {
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      return send({ janus: 'error', error: { code: 454, reason: 'invalid JSON' } });
    }
    const { transaction } = m;
    const handles = sessions.get(m.session_id);
    switch (m.janus) {
      case 'create': {
        const id = newId();
        sessions.set(id, new Map());
        return send({ janus: 'success', transaction, data: { id } });
      }
      case 'attach': {
        if (!handles) break;
        const id = newId();
        handles.set(id, { id, transports: [] });
        return send({ janus: 'success', transaction, session_id: m.session_id, data: { id } });
      }
      case 'keepalive':
      case 'trickle':
        return send({ janus: 'ack', transaction, session_id: m.session_id });
      case 'destroy':
        if (!handles) break;
        for (const h of handles.values()) closeHandle(h);
        sessions.delete(m.session_id);
        return send({ janus: 'success', transaction, session_id: m.session_id });
      case 'message': {
        const h = handles?.get(m.handle_id);
        if (!h) break;
        let r;
        try {
          r = await videoroom(h, m.body ?? {}, m.jsep);
        } catch (e) {
          r = { data: { videoroom: 'event', error_code: INVALID_REQUEST, error: String(e.message ?? e) } };
        }
        return send({
          janus: 'event',
          transaction,
          session_id: m.session_id,
          sender: h.id,
          plugindata: { plugin: 'janus.plugin.videoroom', data: r.data },
          ...(r.jsep ? { jsep: r.jsep } : {}),
        });
      }
      default:
    }
    return send({ janus: 'error', transaction, error: { code: 458, reason: 'no such session or handle' } });
  }
});
wss.on('listening', () => console.log(`mediasoup ${mediasoup.version} bench server on ws://${ADDR}:${PORT}, worker pid ${worker.pid}`));
