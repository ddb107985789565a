use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use geomesh_core::GeoPoint;
use tokio::sync::mpsc;

use super::*;
use crate::metrics::Metrics;
use crate::socket::MediaSocket;
use crate::workers::{Datagram, Demux};

fn frankfurt() -> AccessModel {
    AccessModel {
        location: GeoPoint::new(50.11, 8.68).unwrap(),
        base_ms: 10.0,
        ms_per_km: 0.01,
        jitter_ms: 0.0,
        loss_pct: 0.0,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An ICE binding request naming `ufrag` (USERNAME `ufrag:peer`).
fn stun_from(ufrag: &str) -> Vec<u8> {
    let user = format!("{ufrag}:peer");
    let padded = user.len().div_ceil(4) * 4;
    let mut b = vec![0x00, 0x01];
    b.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    b.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    b.extend_from_slice(&[7; 12]);
    b.extend_from_slice(&[0x00, 0x06]);
    b.extend_from_slice(&(user.len() as u16).to_be_bytes());
    b.extend_from_slice(user.as_bytes());
    b.resize(20 + 4 + padded, 0);
    b
}

#[test]
fn the_lab_file_reads_both_shapes_and_refuses_bad_numbers() {
    let old = WanLab::parse(r#"{"edge-b": 44.0}"#).unwrap();
    assert_eq!(old.octo.len(), 1);
    assert_eq!(old.access, None);
    let lab = WanLab {
        octo: old.octo.clone(),
        access: Some(frankfurt()),
    };
    let text = serde_json::to_string(&lab).unwrap();
    assert_eq!(WanLab::parse(&text).unwrap(), lab);
    for bad in [
        r#"{"octo": {}, "access": {"location": {"lat": 50, "lon": 8}, "base_ms": -1, "ms_per_km": 0.01}}"#,
        r#"{"octo": {}, "access": {"location": {"lat": 50, "lon": 8}, "base_ms": 1, "ms_per_km": 0.01, "loss_pct": 101}}"#,
        r#"{"octo": {}, "access": {"location": {"lat": 95, "lon": 8}, "base_ms": 1, "ms_per_km": 0.01}}"#,
        r#"{"octo": {}, "access": {"base_ms": 1}}"#,
        r#"{"octo": {"edge-b": "far"}}"#,
        "[1, 2]",
        "",
    ] {
        assert!(WanLab::parse(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn a_located_session_is_delayed_from_its_first_stun_request_until_it_ends() {
    let lab = Arc::new(AccessLab::new(frankfurt()));
    let demux = Demux::with_lab(Some(lab.clone()));
    demux.add_ufrag("near", 0);
    demux.add_ufrag("anon", 1);
    // Paris: 479 km from Frankfurt → RTT 10 + 4.79 ms, one way half of it.
    lab.located("near", GeoPoint::new(48.86, 2.35).unwrap());
    let (paris, anon) = (addr(5000), addr(5001));
    assert_eq!(demux.lab_delay(&paris), None, "no address known yet");
    assert_eq!(demux.worker(&stun_from("near"), &paris), Some(0));
    assert_eq!(demux.worker(&stun_from("anon"), &anon), Some(1));
    let d = demux.lab_delay(&paris).expect("the address is learned");
    let want = (10.0
        + 0.01
            * geomesh_geoip::haversine_km(
                GeoPoint::new(48.86, 2.35).unwrap(),
                frankfurt().location,
            ))
        / 2.0;
    assert!(
        (d.as_secs_f64() * 1000.0 - want).abs() < 1e-6,
        "{d:?} vs {want}"
    );
    assert_eq!(demux.lab_delay(&anon), None, "a session without a location");
    demux.remove("near", &[paris]);
    assert_eq!(demux.lab_delay(&paris), None);
    // Outside the lab nothing is delayed.
    let plain = Demux::default();
    plain.add_ufrag("near", 0);
    assert_eq!(plain.worker(&stun_from("near"), &paris), Some(0));
    assert_eq!(plain.lab_delay(&paris), None);
}

async fn line(model: AccessModel) -> (DelayLine, mpsc::Receiver<crate::workers::Batch>) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let socket =
        Arc::new(MediaSocket::new(tokio::net::UdpSocket::from_std(sock).unwrap()).unwrap());
    let (tx, rx) = mpsc::channel(16);
    let metrics = Arc::new(Metrics::default());
    (DelayLine::spawn(model, socket, vec![tx], metrics), rx)
}

fn datagram(n: u8) -> Held {
    Held::In {
        worker: 0,
        datagram: Datagram {
            data: bytes::Bytes::from(vec![n]),
            src: addr(6000),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn received_datagrams_reach_their_worker_when_due_and_in_order() {
    let (line, mut rx) = line(frankfurt()).await;
    line.hold(Duration::from_millis(40), datagram(1));
    line.hold(Duration::from_millis(40), datagram(2));
    tokio::time::sleep(Duration::from_millis(39)).await;
    assert!(rx.try_recv().is_err(), "released early");
    tokio::time::sleep(Duration::from_millis(2)).await;
    // Due together: one batch for the worker, in the order held.
    let got: Vec<u8> = rx.try_recv().unwrap().iter().map(|d| d.data[0]).collect();
    assert_eq!(got, vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_lossy_leg_loses_and_a_jittery_one_stays_within_its_bound() {
    let (line, mut rx) = line(AccessModel {
        loss_pct: 100.0,
        ..frankfurt()
    })
    .await;
    for n in 0..10 {
        line.hold(Duration::from_millis(5), datagram(n));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "a 100 % loss leg delivered");

    let (line, mut rx) = line_jitter().await;
    for n in 0..20 {
        line.hold(Duration::from_millis(10), datagram(n));
    }
    tokio::time::sleep(Duration::from_millis(9)).await;
    assert!(rx.try_recv().is_err(), "jitter only adds delay");
    tokio::time::sleep(Duration::from_millis(12)).await;
    let mut n = 0;
    while let Ok(batch) = rx.try_recv() {
        n += batch.len();
    }
    assert_eq!(n, 20, "everything arrives within delay + jitter");
}

async fn line_jitter() -> (DelayLine, mpsc::Receiver<crate::workers::Batch>) {
    line(AccessModel {
        jitter_ms: 10.0,
        ..frankfurt()
    })
    .await
}
