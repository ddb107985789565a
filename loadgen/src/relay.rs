//! The floor an edge is compared with: a bare UDP relay on one socket that
//! forwards every datagram from a publisher to that publisher's receivers.
//! No ICE, no DTLS, no SRTP, no RTP parsing — the least work any SFU must
//! do per packet (one receive, one send per receiver).
//!
//! It runs on its own OS thread with a blocking socket, so its CPU time
//! (`getrusage(RUSAGE_THREAD)`) is exactly the forwarding cost.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::LoadgenError;

/// Publisher address → receiver addresses.
pub type RelayTable = HashMap<SocketAddr, Vec<SocketAddr>>;

const IDLE: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// How often an idle relay looks at its phase.
const POLL: Duration = Duration::from_millis(20);

/// What the relay did during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RelayStats {
    /// Datagrams received from publishers.
    pub received: u64,
    /// Datagrams sent to receivers.
    pub forwarded: u64,
    /// Thread CPU seconds (user + system).
    pub cpu_seconds: f64,
    /// Datagrams from addresses not in the table.
    pub unknown: u64,
    /// Sends the OS refused.
    pub send_errors: u64,
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    phase: Arc<AtomicU8>,
    thread: JoinHandle<RelayStats>,
}

fn thread_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}

impl Relay {
    /// Starts relaying on `socket` by `table` until [`Relay::stop`] or `deadline`.
    pub fn start(
        socket: UdpSocket,
        table: RelayTable,
        deadline: Instant,
    ) -> Result<Relay, LoadgenError> {
        let addr = socket
            .local_addr()
            .map_err(LoadgenError::io("relay socket"))?;
        socket
            .set_read_timeout(Some(POLL))
            .map_err(LoadgenError::io("relay socket"))?;
        let phase = Arc::new(AtomicU8::new(IDLE));
        let p = phase.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-relay".into())
            .spawn(move || relay_loop(&socket, &table, &p, deadline))
            .map_err(LoadgenError::io("relay thread"))?;
        Ok(Relay {
            addr,
            phase,
            thread,
        })
    }

    /// Where publishers send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts the measured window.
    pub fn start_measuring(&self) {
        self.phase.store(MEASURING, Ordering::SeqCst);
    }

    /// Ends the window and the thread; returns the window's figures.
    pub fn stop(self) -> RelayStats {
        self.phase.store(DONE, Ordering::SeqCst);
        // The thread only returns; a panic there is a bug worth surfacing.
        self.thread.join().expect("relay thread panicked")
    }
}

fn relay_loop(
    sock: &UdpSocket,
    table: &RelayTable,
    phase: &AtomicU8,
    deadline: Instant,
) -> RelayStats {
    let mut buf = vec![0u8; 2048];
    let mut s = RelayStats::default();
    let mut measuring = false;
    let mut cpu0 = 0.0;
    // Bounded by the deadline; each pass blocks at most POLL.
    loop {
        match phase.load(Ordering::Relaxed) {
            MEASURING if !measuring => {
                measuring = true;
                s = RelayStats::default();
                cpu0 = thread_cpu_seconds();
            }
            DONE => break,
            _ => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            // Timeouts (WouldBlock/TimedOut) and ICMP errors from departed clients.
            Err(_) => continue,
        };
        let Some(dsts) = table.get(&from) else {
            s.unknown += 1;
            continue;
        };
        s.received += 1;
        for d in dsts {
            match sock.send_to(&buf[..n], d) {
                Ok(_) => s.forwarded += 1,
                Err(_) => s.send_errors += 1,
            }
        }
    }
    if measuring {
        s.cpu_seconds = thread_cpu_seconds() - cpu0;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_by_table_and_counts() {
        let relay_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&r1, &r2] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let table: RelayTable = [(
            publisher.local_addr().unwrap(),
            vec![r1.local_addr().unwrap(), r2.local_addr().unwrap()],
        )]
        .into();
        let relay =
            Relay::start(relay_sock, table, Instant::now() + Duration::from_secs(30)).unwrap();
        relay.start_measuring();
        // Give the relay a poll to see the phase before sending.
        std::thread::sleep(POLL * 2);
        for i in 0..10u8 {
            publisher.send_to(&[i; 100], relay.addr()).unwrap();
        }
        stranger.send_to(b"x", relay.addr()).unwrap();
        let mut buf = [0u8; 200];
        for r in [&r1, &r2] {
            for i in 0..10u8 {
                let (n, from) = r.recv_from(&mut buf).unwrap();
                assert_eq!((n, from, buf[0]), (100, relay.addr(), i));
            }
        }
        std::thread::sleep(POLL * 2);
        let s = relay.stop();
        assert_eq!((s.received, s.forwarded, s.unknown), (10, 20, 1));
        assert!(s.cpu_seconds >= 0.0);
    }
}
