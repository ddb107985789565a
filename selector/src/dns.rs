//! GeoDNS: authoritative answers for the meeting hostname (`cluster.domain`).
//!
//! - `A`/`AAAA` for the hostname: the nearest healthy, registered, not
//!   draining edges ([`MAX_ANSWERS`], by great-circle distance from the
//!   client to the edge's region) of that address family. The client is the
//!   EDNS Client Subnet address when the query carries one, else the
//!   resolver's source address; located with GeoIP, else the topology's
//!   default location. Distance, not the strategy's RTT model: a DNS answer
//!   is a coarse hint, the join API decides placement. When no edge is
//!   healthy on this node, registered non-draining edges are answered.
//! - `SOA` and `NS` for the hostname (one NS per selector with a `dns`
//!   address, named `<selector-id>.ns.<hostname>`, whose `A`/`AAAA` this
//!   server also answers); any other type: NOERROR with no answers (SOA in
//!   the authority section).
//! - Other names under the hostname: NXDOMAIN; names outside it: REFUSED.
//!
//! UDP and TCP on the same port (RFC 7766: two-byte length before each
//! message, several queries per connection, idle connections closed after
//! [`TCP_IDLE`], at most [`MAX_TCP_CONNECTIONS`] at once). Messages that do
//! not parse are counted and answered FORMERR when they have a header;
//! nothing panics on input.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use geomesh_core::GeoPoint;
use geomesh_geoip::haversine_km;
use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::metrics::Metrics;
use crate::node::Shared;

/// Most addresses in one answer.
pub const MAX_ANSWERS: usize = 2;

/// A TCP connection that sends no complete query for this long is closed
/// (RFC 7766 §6.2.3 suggests seconds, not minutes, for a busy server).
pub const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// TCP connections served at once; more wait in the kernel's backlog.
pub const MAX_TCP_CONNECTIONS: usize = 256;

/// The request handler.
pub struct GeoDns {
    shared: Arc<Shared>,
    zone: LowerName,
    zone_name: Name,
    /// (name, address) of every selector name server.
    name_servers: Vec<(Name, Option<IpAddr>)>,
}

impl GeoDns {
    /// A handler for `cluster.domain`; `None` when it is not set or not a name.
    pub fn new(shared: Arc<Shared>) -> Option<Self> {
        let domain = shared.cfg.topology.cluster.domain.clone()?;
        let mut zone_name = Name::from_ascii(&domain).ok()?;
        zone_name.set_fqdn(true);
        let name_servers = shared
            .cfg
            .topology
            .selectors
            .iter()
            .filter_map(|s| {
                let dns = s.dns?;
                let name = Name::from_ascii(format!("{}.ns", s.id))
                    .ok()?
                    .append_domain(&zone_name)
                    .ok()?;
                let ip = (!dns.ip().is_unspecified()).then_some(dns.ip());
                Some((name, ip))
            })
            .collect();
        Some(Self {
            zone: LowerName::new(&zone_name),
            zone_name,
            name_servers,
            shared,
        })
    }

    fn ttl(&self) -> u32 {
        u32::try_from(self.shared.cfg.dns_ttl.as_secs()).unwrap_or(u32::MAX)
    }

    fn soa(&self) -> Record {
        let mname = self
            .name_servers
            .first()
            .map_or_else(|| self.zone_name.clone(), |(n, _)| n.clone());
        let rname = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&self.zone_name))
            .unwrap_or_else(|_| self.zone_name.clone());
        let serial = self
            .shared
            .with_state(|st| u32::try_from(st.clock_ms() / 1000).unwrap_or(u32::MAX));
        let ttl = self.ttl();
        Record::from_rdata(
            self.zone_name.clone(),
            ttl,
            RData::SOA(SOA::new(mname, rname, serial, 3600, 600, 86400, ttl)),
        )
    }

    /// Edge addresses to answer for a client at `client` (nearest first).
    pub fn edge_addresses(&self, client: Option<GeoPoint>, v6: bool) -> Vec<IpAddr> {
        let now = Instant::now();
        let applied = self.shared.store.read();
        let st = &applied.state;
        let soft = self.shared.soft();
        let family = |ip: &IpAddr| ip.is_ipv6() == v6 && !ip.is_unspecified();
        let pick = |need_healthy: bool| {
            // Registered edges: the topology's address, or the one an edge
            // added at runtime described.
            let mut v: Vec<(f64, &str, IpAddr)> = st
                .edges()
                .iter()
                .filter_map(|(id, rec)| {
                    let ip = match self.shared.cfg.topology.edge(id) {
                        Some(t) => t.public_ip,
                        None => rec.public_ip?,
                    };
                    if !family(&ip) || rec.draining || (need_healthy && !soft.is_healthy(id, now)) {
                        return None;
                    }
                    let d = client.map_or(0.0, |c| haversine_km(c, rec.location));
                    Some((d, id.as_str(), ip))
                })
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
            v
        };
        let mut v = pick(true);
        if v.is_empty() {
            v = pick(false);
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for (_, _, ip) in v {
            if !out.contains(&ip) {
                out.push(ip);
            }
            if out.len() == MAX_ANSWERS {
                break;
            }
        }
        out
    }

    fn client_location(&self, ecs: Option<&ClientSubnet>, src: IpAddr) -> Option<GeoPoint> {
        let ip = ecs.map_or(src, ClientSubnet::addr);
        match self.shared.geoip.lookup(ip) {
            Ok(l) => Some(l.point),
            Err(_) => self.shared.geoip.default_location(),
        }
    }

    fn count(&self, result: &str) {
        Metrics::result(&self.shared.metrics.dns_queries, result);
    }
}

fn address_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), ttl, rdata)
}

#[async_trait::async_trait]
impl RequestHandler for GeoDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let error = |code: ResponseCode| {
            let mut md = Metadata::response_from_request(&request.metadata);
            md.response_code = code;
            md
        };
        if request.metadata.op_code != OpCode::Query {
            self.count("notimp");
            let r = builder.build_no_records(error(ResponseCode::NotImp));
            return send(&mut response, r, request).await;
        }
        let Ok(info) = request.request_info() else {
            self.count("formerr");
            let r = builder.build_no_records(error(ResponseCode::FormErr));
            return send(&mut response, r, request).await;
        };
        let qname = info.query.name().clone();
        let qtype = info.query.query_type();
        let ecs = request
            .edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) => Some(*s),
                _ => None,
            });
        // Echo the subnet (RFC 7871 §7.2.1): the answer holds for the whole
        // source prefix.
        let mut edns_out = Edns::new();
        edns_out.set_max_payload(1232);
        if let Some(s) = &ecs {
            edns_out
                .options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    s.addr(),
                    s.source_prefix(),
                    s.source_prefix(),
                )));
        }
        let mut builder = builder;
        if request.edns.is_some() {
            builder.edns(&edns_out);
        }
        let mut md = Metadata::response_from_request(&request.metadata);
        md.authoritative = true;
        md.recursion_available = false;

        if !self.zone.zone_of(&qname) {
            self.count("refused");
            md.authoritative = false;
            md.response_code = ResponseCode::Refused;
            let r = builder.build_no_records(md);
            return send(&mut response, r, request).await;
        }
        let name = Name::from(qname.clone());
        let ttl = self.ttl();
        let soa = self.soa();
        let mut answers: Vec<Record> = Vec::new();
        if qname == self.zone {
            match qtype {
                RecordType::A | RecordType::AAAA => {
                    let client = self.client_location(ecs.as_ref(), request.src().ip());
                    for ip in self.edge_addresses(client, qtype == RecordType::AAAA) {
                        answers.push(address_record(&name, ttl, ip));
                    }
                }
                RecordType::SOA => answers.push(soa.clone()),
                RecordType::NS => {
                    for (ns, _) in &self.name_servers {
                        answers.push(Record::from_rdata(
                            name.clone(),
                            ttl,
                            RData::NS(NS(ns.clone())),
                        ));
                    }
                }
                _ => {}
            }
        } else if let Some((_, ip)) = self
            .name_servers
            .iter()
            .find(|(n, _)| LowerName::new(n) == qname)
        {
            if let Some(ip) = ip
                && matches!(
                    (qtype, ip),
                    (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_))
                )
            {
                answers.push(address_record(&name, ttl, *ip));
            }
        } else {
            self.count("nxdomain");
            md.response_code = ResponseCode::NXDomain;
            let r = builder.build(md, [], [], [&soa], []);
            return send(&mut response, r, request).await;
        }
        self.count(if answers.is_empty() {
            "nodata"
        } else {
            "answer"
        });
        let authority: Vec<&Record> = if answers.is_empty() {
            vec![&soa]
        } else {
            vec![]
        };
        let r = builder.build(md, answers.iter(), [], authority, []);
        send(&mut response, r, request).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "DNS answer not sent");
            let mut md = Metadata::response_from_request(&request.metadata);
            md.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: md,
                counts: Default::default(),
            })
        }
    }
}

/// Keeps the encoded answer, for the transport to send.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut out = Vec::with_capacity(512);
        let info = response.destructive_emit(&mut BinEncoder::new(&mut out))?;
        *self.0.lock().expect("DNS capture lock") = out;
        Ok(info)
    }
}

impl GeoDns {
    /// The answer to one DNS message from `src`, encoded; `None` when
    /// nothing should be sent (a response, or no readable header). What
    /// does not parse is counted and answered FORMERR.
    pub async fn answer(
        &self,
        packet: &[u8],
        src: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(req) if req.metadata.message_type == MessageType::Query => {
                let capture = Capture::default();
                self.handle_request::<_, hickory_server::net::runtime::TokioTime>(
                    &req,
                    capture.clone(),
                )
                .await;
                let out = std::mem::take(&mut *capture.0.lock().expect("DNS capture lock"));
                if out.is_empty() {
                    return None;
                }
                // hickory decodes some names it then encodes into labels
                // it cannot decode again (found by fuzzing: a label code
                // of 129). Never send an answer that does not parse.
                if hickory_proto::op::Message::from_vec(&out).is_err() {
                    self.shared.metrics.dns_bad_packets.inc();
                    return formerr(packet);
                }
                Some(out)
            }
            _ => {
                self.shared.metrics.dns_bad_packets.inc();
                formerr(packet)
            }
        }
    }
}

/// Answers FORMERR to a packet with a readable header (id and opcode kept).
fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None; // no header, or a response: never answer those
    }
    let mut out = packet[..12].to_vec();
    out[2] = 0x80 | (packet[2] & 0x78); // QR=1, same opcode
    out[3] = 0x01; // FORMERR
    out[4..12].fill(0);
    Some(out)
}

/// Serves GeoDNS on a UDP socket until the task is aborted.
pub async fn serve(shared: Arc<Shared>, socket: UdpSocket) {
    let Some(handler) = GeoDns::new(shared.clone()) else {
        tracing::warn!("GeoDNS: cluster.domain is not a DNS name; not serving");
        return;
    };
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "GeoDNS receive");
                continue;
            }
        };
        if let Some(reply) = handler.answer(&buf[..n], src, Protocol::Udp).await {
            let _ = socket.send_to(&reply, src).await;
        }
    }
}

/// Serves GeoDNS over TCP until the task is aborted.
pub async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let Some(handler) = GeoDns::new(shared.clone()) else {
        return; // serve() says why
    };
    let handler = Arc::new(handler);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "GeoDNS accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = tcp_connection(&handler, stream, src).await {
                tracing::debug!(error = %e, %src, "GeoDNS TCP connection ended");
            }
        });
    }
}

/// Answers the queries of one TCP connection in order until the client
/// closes it, falls idle, or sends something that is not DNS framing.
async fn tcp_connection(
    handler: &GeoDns,
    mut stream: TcpStream,
    src: SocketAddr,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle
        }
        let len = usize::from(u16::from_be_bytes(len));
        buf.resize(len, 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(reply) = handler.answer(&buf, src, Protocol::Tcp).await else {
            // A response or no header: not a client speaking DNS.
            return Ok(());
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return Ok(()); // cannot happen for our answers; never send a broken frame
        };
        let mut out = Vec::with_capacity(2 + reply.len());
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::formerr;

    #[test]
    fn formerr_keeps_id_and_ignores_garbage() {
        assert_eq!(formerr(&[1, 2, 3]), None);
        let q = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let r = formerr(&q).unwrap();
        assert_eq!(&r[..2], &[0xab, 0xcd]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(r[3] & 0x0f, 1);
        let mut resp = q;
        resp[2] |= 0x80;
        assert_eq!(formerr(&resp), None, "never answer a response");
    }
}
