//! The media UDP socket with batched I/O: `recvmmsg` on the way in, UDP
//! GSO on the way out (both through `quinn-udp`, which owns the unsafe
//! `cmsg` work and falls back to one datagram per call where the kernel
//! lacks them), and the [`Outbox`] that turns a worker's transmits into as
//! few send calls as it can.
//!
//! Why: on the 2-core benchmark machine one `sendto` per forwarded packet
//! was ~45 % of the edge's CPU (route lookup, skb allocation and the
//! syscall itself, per packet). A subscriber typically receives the 3–6
//! equal-sized packets of a video frame in one go; GSO hands them to the
//! kernel as one buffer.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams one `recv_batch` call returns at most.
pub const RECV_BATCH: usize = quinn_udp::BATCH_SIZE;

/// Bytes one GSO send carries at most (the kernel's limit for one UDP
/// payload, less the headers).
const GSO_MAX_BYTES: usize = 64_000;

/// The media socket: tokio readiness plus `quinn-udp`'s batched syscalls.
#[derive(Debug)]
pub struct MediaSocket {
    io: UdpSocket,
    state: UdpSocketState,
}

impl MediaSocket {
    /// Wraps a bound, non-blocking socket (enables GRO where the kernel has it).
    pub fn new(io: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&io))?;
        Ok(Self { io, state })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Waits until the socket may have datagrams.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Reads up to `bufs.len()` datagrams (or GRO runs of them; see
    /// [`RecvMeta::stride`]) without blocking: `WouldBlock` when none wait.
    pub fn recv_batch(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.io.try_io(Interest::READABLE, || {
            self.state.recv(UdpSockRef::from(&self.io), bufs, meta)
        })
    }

    /// Segments one GSO send may carry (1 when the kernel has no GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `contents` to `destination` without blocking; with
    /// `segment_size`, as that many-byte datagrams (the last may be shorter).
    pub fn send(
        &self,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let t = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        // Straight to the kernel, not through tokio's readiness: workers
        // never wait to send (a full buffer is a counted drop), and so a
        // send is not refused on stale readiness either.
        self.state.try_send(UdpSockRef::from(&self.io), &t)
    }
}

/// What one [`Outbox::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams lost to send errors (a full socket buffer, an unreachable
    /// address).
    pub failed: u64,
    /// Send calls made.
    pub calls: u64,
}

/// Datagrams a worker produced since its last flush, in order, in one
/// reused buffer (no allocation per datagram once it has grown).
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    items: Vec<(SocketAddr, Range<usize>)>,
}

impl Outbox {
    /// Queues one datagram.
    pub fn push(&mut self, destination: SocketAddr, contents: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(contents);
        self.items.push((destination, start..self.bytes.len()));
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The send calls a flush would make, as (destination, byte range,
    /// segment size, datagrams).
    #[cfg(test)]
    fn runs(&self, max_segments: usize) -> Vec<(SocketAddr, Range<usize>, usize, usize)> {
        let mut out = Vec::new();
        self.for_each_run(max_segments, |dest, range, seg, n| {
            out.push((dest, range, seg, n));
        });
        out
    }

    /// Consecutive datagrams to one destination of one size (the last of
    /// a run may be shorter: the kernel's GSO rule) form one send of at
    /// most `max_segments`.
    fn for_each_run(
        &self,
        max_segments: usize,
        mut f: impl FnMut(SocketAddr, Range<usize>, usize, usize),
    ) {
        let max_segments = max_segments.max(1);
        let mut i = 0;
        while i < self.items.len() {
            let (dest, ref first) = self.items[i];
            let seg = first.len();
            let limit = GSO_MAX_BYTES
                .checked_div(seg)
                .map_or(1, |fit| max_segments.min(fit).max(1));
            let mut end = first.end;
            let mut n = 1;
            while n < limit && i + n < self.items.len() {
                let (d, ref r) = self.items[i + n];
                if d != dest || r.len() > seg {
                    break;
                }
                end = r.end;
                n += 1;
                if r.len() < seg {
                    // A shorter datagram can only end a run.
                    break;
                }
            }
            f(dest, first.start..end, seg, n);
            i += n;
        }
    }

    /// Hands every queued datagram to `f`, in order, and empties the box
    /// (a sink that is not a socket: the virtual-time tests' network).
    pub fn drain(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) {
        for (dest, range) in self.items.drain(..) {
            f(dest, &self.bytes[range]);
        }
        self.bytes.clear();
    }

    /// Sends everything queued and empties the box.
    pub fn flush(&mut self, socket: &MediaSocket) -> Flushed {
        let mut done = Flushed::default();
        let bytes = &self.bytes;
        let max = socket.max_segments();
        self.for_each_run(max, |dest, range, seg, n| {
            let contents = &bytes[range];
            let segment_size = (n > 1).then_some(seg);
            done.calls += 1;
            match socket.send(dest, contents, segment_size) {
                Ok(()) => {
                    done.datagrams += n as u64;
                    done.bytes += contents.len() as u64;
                }
                Err(_) => done.failed += n as u64,
            }
        });
        self.bytes.clear();
        self.items.clear();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn equal_sized_datagrams_to_one_destination_share_a_send() {
        let mut o = Outbox::default();
        for len in [1000, 1000, 1000, 400] {
            o.push(addr(1), &vec![7; len]);
        }
        o.push(addr(2), &[1; 100]);
        o.push(addr(1), &[2; 1000]);
        let runs: Vec<_> = o
            .runs(64)
            .into_iter()
            .map(|(d, r, s, n)| (d.port(), r, s, n))
            .collect();
        assert_eq!(
            runs,
            vec![
                (1, 0..3400, 1000, 4),
                (2, 3400..3500, 100, 1),
                (1, 3500..4500, 1000, 1)
            ]
        );
    }

    #[test]
    fn a_larger_datagram_starts_a_new_run_and_limits_hold() {
        let mut o = Outbox::default();
        for len in [500, 500, 900, 900, 900] {
            o.push(addr(1), &vec![0; len]);
        }
        let runs: Vec<_> = o.runs(2).into_iter().map(|(_, _, s, n)| (s, n)).collect();
        assert_eq!(runs, vec![(500, 2), (900, 2), (900, 1)]);
        // Without GSO every datagram is its own send.
        assert_eq!(o.runs(1).len(), 5);
    }

    #[tokio::test]
    async fn a_flush_delivers_every_datagram_in_order() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let tx = MediaSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let mut o = Outbox::default();
        let to = rx.local_addr().unwrap();
        let sizes = [1200, 1200, 1200, 300, 80, 1200, 1200];
        for (i, &len) in sizes.iter().enumerate() {
            o.push(to, &vec![i as u8; len]);
        }
        let done = o.flush(&tx);
        assert_eq!(done.datagrams, sizes.len() as u64);
        assert_eq!(done.failed, 0);
        assert!(o.is_empty());
        let mut buf = [0u8; 2048];
        for (i, &len) in sizes.iter().enumerate() {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (len, i as u8), "datagram {i}");
        }
    }

    #[tokio::test]
    async fn recv_batch_reads_what_is_queued_in_one_call() {
        let rx = MediaSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 100], rx.local_addr().unwrap()).unwrap();
        }
        let mut store = vec![[0u8; 2048]; RECV_BATCH];
        let mut meta = vec![RecvMeta::default(); RECV_BATCH];
        // Loopback queues a datagram before `send_to` returns: all five
        // wait, and one call takes them.
        for _ in 0..100 {
            rx.readable().await.unwrap();
            let mut bufs: Vec<IoSliceMut<'_>> =
                store.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match rx.recv_batch(&mut bufs, &mut meta) {
                Ok(n) => {
                    let got: Vec<_> = meta[..n].iter().map(|m| (m.len, m.addr)).collect();
                    assert_eq!(got, vec![(100, tx.local_addr().unwrap()); 5]);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        panic!("nothing read");
    }
}
