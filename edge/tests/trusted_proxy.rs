//! Behind a TLS terminator every WebSocket comes from the terminator's
//! address: with `trusted_proxies` the per-address cap counts the client
//! its `X-Forwarded-For` names, and without it the terminator itself.

use std::net::SocketAddr;

use geomesh_core::RegionId;
use geomesh_edge::server::{EdgeConfig, start};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn config(trusted: &[&str]) -> EdgeConfig {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (id, _, _) = geomesh_core::fuzz::fuzz_ids();
    EdgeConfig {
        id,
        region: RegionId::new("test").unwrap(),
        media_bind: loopback,
        media_advertised: loopback,
        http_bind: loopback,
        verifier: geomesh_core::fuzz::token_signer().verifier(),
        dev_signer: None,
        agent: None,
        octo: None,
        access_lab: None,
        last_n: Default::default(),
        media_workers: 1,
        spread_above: None,
        bwe: false,
        capacity: 100,
        max_connections: 100,
        max_connections_per_address: 1,
        trusted_proxies: trusted.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

/// Opens a signaling WebSocket as if forwarded for `client`; the socket
/// (kept open) or the refusal's HTTP status.
async fn open(http: SocketAddr, client: &str) -> Result<impl Sized, u16> {
    let mut req = format!("ws://{http}/v1/rtc").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_cap_counts_the_client_a_trusted_proxy_names() {
    let edge = start(config(&["127.0.0.1/32"])).await.unwrap();
    let a = open(edge.http_addr, "198.51.100.1")
        .await
        .expect("first client");
    let b = open(edge.http_addr, "198.51.100.2")
        .await
        .expect("another client");
    assert_eq!(open(edge.http_addr, "198.51.100.1").await.err(), Some(429));
    drop((a, b));
}

#[tokio::test]
async fn without_trust_the_header_is_ignored() {
    let edge = start(config(&[])).await.unwrap();
    let a = open(edge.http_addr, "198.51.100.1")
        .await
        .expect("first client");
    // Another "client" through the same peer is the same address.
    assert_eq!(open(edge.http_addr, "198.51.100.2").await.err(), Some(429));
    drop(a);
}
