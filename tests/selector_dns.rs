//! GeoDNS of a real `geomesh selector`, queried with hickory-proto messages
//! over UDP and TCP (every question is asked both ways and must get the
//! same answer): nearest healthy edge by the resolver's address or by EDNS
//! Client Subnet, SOA/NS, NXDOMAIN, REFUSED, garbage packets, and several
//! queries on one TCP connection.

mod selector_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use selector_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

async fn ask(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    ecs: Option<(&str, u8)>,
) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((ip, prefix)) = ecs {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                ip.parse().unwrap(),
                prefix,
                0,
            )));
    }
    m.set_edns(edns);
    let query = m.to_vec().unwrap();
    let reply = raw(server, &query).await.expect("an answer");
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!(r.metadata.id, 4242);
    let mut tcp = TcpStream::connect(server).await.unwrap();
    let over_tcp = tcp_ask(&mut tcp, &query).await.expect("an answer over TCP");
    assert_eq!(
        Message::from_vec(&over_tcp).unwrap(),
        r,
        "the same answer over TCP"
    );
    r
}

/// One length-prefixed query on `tcp` (RFC 7766), its answer.
async fn tcp_ask(tcp: &mut TcpStream, query: &[u8]) -> Option<Vec<u8>> {
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tcp.write_all(&framed).await.ok()?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), tcp.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut reply).await.ok()?;
    Some(reply)
}

async fn raw(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geodns_answers_the_nearest_healthy_edge_with_and_without_ecs() {
    let mut c = Cluster::new(1);
    let (http, hb) = c.up().await;
    let dns = c.selectors[0].dns;

    // The resolver (loopback) is in the "eu" override.
    let r = ask(dns, "meet.test.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(
        addresses(&r),
        vec![ip("192.0.2.1"), ip("192.0.2.2")],
        "{r:?}"
    );
    assert_eq!(r.answers[0].ttl, 20);
    // EDNS Client Subnet wins over the resolver's address, and is echoed.
    let r = ask(dns, "meet.test.", RecordType::A, Some(("198.51.100.0", 24))).await;
    assert_eq!(addresses(&r)[0], ip("192.0.2.2"), "{r:?}");
    match r.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet)) {
        Some(EdnsOption::Subnet(s)) => assert_eq!((s.source_prefix(), s.scope_prefix()), (24, 24)),
        other => panic!("no ECS echoed: {other:?}"),
    }
    let r = ask(dns, "MEET.test.", RecordType::A, Some(("203.0.113.0", 24))).await;
    assert_eq!(
        addresses(&r)[0],
        ip("192.0.2.3"),
        "case-insensitive, Tokyo: {r:?}"
    );

    // No IPv6 edges: NOERROR, no answer, SOA in authority.
    let r = ask(dns, "meet.test.", RecordType::AAAA, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert!(matches!(r.authorities[0].data, RData::SOA(_)));
    // SOA, NS and the name server's own address.
    let r = ask(dns, "meet.test.", RecordType::SOA, None).await;
    assert!(matches!(r.answers[0].data, RData::SOA(_)));
    let r = ask(dns, "meet.test.", RecordType::NS, None).await;
    let RData::NS(ns) = &r.answers[0].data else {
        panic!("{r:?}")
    };
    assert_eq!(ns.0.to_ascii(), "sel-1.ns.meet.test.");
    let r = ask(dns, "sel-1.ns.meet.test.", RecordType::A, None).await;
    assert_eq!(addresses(&r), vec![ip("127.0.0.1")]);
    // Other names.
    let r = ask(dns, "other.meet.test.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(r.authorities[0].data, RData::SOA(_)));
    let r = ask(dns, "example.org.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);

    // Garbage: counted, FORMERR when there is a header, no crash.
    assert_eq!(raw(dns, b"\x01\x02\x03").await, None);
    let reply = raw(
        dns,
        &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
    )
    .await
    .unwrap();
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!(
        (r.metadata.id, r.metadata.response_code),
        (0xbeef, ResponseCode::FormErr)
    );
    let r = ask(dns, "meet.test.", RecordType::A, None).await;
    assert_eq!(addresses(&r)[0], ip("192.0.2.1"), "still serving");

    // TCP: several queries on one connection, answered in order; a
    // message without a header ends the connection, one with a header
    // gets FORMERR on it first.
    let mut tcp = TcpStream::connect(dns).await.unwrap();
    for id in [7u16, 8, 9] {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("meet.test.").unwrap(),
            RecordType::A,
        ));
        let r = Message::from_vec(&tcp_ask(&mut tcp, &m.to_vec().unwrap()).await.unwrap()).unwrap();
        assert_eq!(r.metadata.id, id);
        assert_eq!(addresses(&r)[0], ip("192.0.2.1"));
    }
    let formerr = tcp_ask(
        &mut tcp,
        &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff],
    )
    .await
    .unwrap();
    assert_eq!(
        Message::from_vec(&formerr).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    assert_eq!(
        tcp_ask(&mut tcp, b"\x01\x02").await,
        None,
        "closed after garbage"
    );

    // A draining edge leaves the answers.
    let (s, _) = post_json(&http, &format!("{}/v1/bridges/edge-eu/drain", c.api(0)), "")
        .await
        .unwrap();
    assert_eq!(s, 200);
    let r = ask(dns, "meet.test.", RecordType::A, None).await;
    assert!(!addresses(&r).contains(&ip("192.0.2.1")), "{r:?}");

    let m = metrics_text(&http, &c.api(0)).await;
    assert!(
        m.contains("geomesh_selector_dns_bad_packets_total 4"),
        "{m}"
    );
    assert!(
        m.contains("geomesh_selector_dns_queries_total{result=\"nxdomain\"} 2"),
        "{m}"
    );
    hb.abort();
}
