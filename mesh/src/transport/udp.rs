//! The UDP sockets geomesh binds for media: the edge's media port and the
//! octo port, with socket buffers sized for bursts.

use std::net::SocketAddr;

use tracing::info;

/// Socket buffers asked for on media sockets. A keyframe burst from many
/// publishers at once (the edge's media port), or a millisecond's worth
/// of a busy trunk arriving together (the octo port: ~140 KB at 100k
/// packets/s), must not overflow the kernel's default (~208 KiB), the
/// first place a loaded server loses packets. The kernel caps them at
/// `net.core.rmem_max`/`wmem_max`; the granted sizes are logged.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Binds a non-blocking UDP socket at `addr` after asking for `buffer`
/// bytes of receive and send buffer (best effort: a smaller grant still
/// works). `what` names the socket in the log line.
pub fn bind_udp(
    addr: SocketAddr,
    buffer: usize,
    what: &str,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    info!(
        socket = what,
        recv_buffer = s.recv_buffer_size().unwrap_or(0),
        send_buffer = s.send_buffer_size().unwrap_or(0),
        "socket buffers"
    );
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_with_at_least_the_default_buffers() {
        let s = bind_udp("127.0.0.1:0".parse().unwrap(), SOCKET_BUFFER, "test").unwrap();
        assert_ne!(s.local_addr().unwrap().port(), 0);
        let s = socket2::SockRef::from(&s);
        // The kernel doubles what it grants (bookkeeping) and caps at rmem_max.
        assert!(s.recv_buffer_size().unwrap() >= 208 * 1024);
        assert!(s.send_buffer_size().unwrap() >= 208 * 1024);
    }
}
