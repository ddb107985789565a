//! Where loss happens: the kernel's per-socket drop counters
//! (`/proc/net/udp`, `/proc/net/udp6`, last column), so a report can say
//! how many datagrams overflowed the server's receive buffer and how many
//! the clients' — loss that is neither the server's logic nor the network.
//! Only sockets in this host's network namespace are visible: for a remote
//! edge the figure is absent.

use std::collections::HashMap;

/// Datagrams dropped per local UDP port, all sockets of the namespace.
pub fn drops_by_port() -> HashMap<u16, u64> {
    let mut out = HashMap::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            parse_into(&text, &mut out);
        }
    }
    out
}

/// Adds the drops of each line of a `/proc/net/udp` table to `out`.
pub fn parse_into(text: &str, out: &mut HashMap<u16, u64>) {
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(drops)) = (fields.get(1), fields.last()) else {
            continue;
        };
        let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        if fields.len() < 13 {
            continue;
        }
        if let Ok(d) = drops.parse::<u64>() {
            *out.entry(port).or_default() += d;
        }
    }
}

/// Sum over `ports` of after − before (ports missing from either are skipped).
pub fn delta(
    before: &HashMap<u16, u64>,
    after: &HashMap<u16, u64>,
    ports: impl IntoIterator<Item = u16>,
) -> u64 {
    ports
        .into_iter()
        .filter_map(|p| Some(after.get(&p)?.saturating_sub(*before.get(&p)?)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_drops() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          306: 0100007F:4A10 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 690248 2 00000000f815c5a6 12\n\
          307: 0100007F:60D7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 689354 2 0000000056813ee1 0\n\
          308: 00000000000000000000000001000000:4A10 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0000000000000000 3\n\
          bad line\n";
        let mut m = HashMap::new();
        parse_into(text, &mut m);
        assert_eq!(m.get(&0x4a10), Some(&15));
        assert_eq!(m.get(&0x60d7), Some(&0));
        let mut later = m.clone();
        *later.get_mut(&0x4a10).unwrap() += 5;
        assert_eq!(delta(&m, &later, [0x4a10, 0x60d7, 1]), 5);
    }

    #[test]
    fn sees_this_hosts_sockets() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert_eq!(drops_by_port().get(&port), Some(&0));
    }
}
