//! Caps on what one source may hold open: WebSocket connections per edge
//! and per source address. Each admitted connection holds a [`Slot`]; the
//! counts go down when it drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Default cap on WebSocket connections per edge.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on WebSocket connections from one address (a NAT of a whole
/// office is many people: generous, but not unbounded).
pub const DEFAULT_MAX_PER_ADDRESS: usize = 200;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The edge holds its maximum.
    #[error("this edge holds {0} signaling connections, its maximum")]
    Edge(usize),
    /// The source address holds its maximum.
    #[error("{0} signaling connections from this address, the maximum")]
    Address(usize),
}

impl Refusal {
    /// A metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Edge(_) => "edge_connections",
            Refusal::Address(_) => "address_connections",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_addr: HashMap<IpAddr, usize>,
}

/// The counts and caps.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_addr: usize,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    addr: IpAddr,
}

impl ConnectionLimits {
    /// Caps of `max_total` connections, `max_per_addr` from one address.
    pub fn new(max_total: usize, max_per_addr: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_addr,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a connection from `addr`, or why not.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Slot, Refusal> {
        let addr = geomesh_core::source::source_key(addr);
        let mut c = self.counts.lock().expect("connection counts lock poisoned");
        if c.total >= self.max_total {
            return Err(Refusal::Edge(self.max_total));
        }
        let n = c.by_addr.entry(addr).or_default();
        if *n >= self.max_per_addr {
            return Err(Refusal::Address(self.max_per_addr));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            limits: self.clone(),
            addr,
        })
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.counts
            .lock()
            .expect("connection counts lock poisoned")
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .limits
            .counts
            .lock()
            .expect("connection counts lock poisoned");
        c.total -= 1;
        if let Some(n) = c.by_addr.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                c.by_addr.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_all_and_slots_give_back() {
        let l = ConnectionLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.admit(a).unwrap();
        let _s2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some(Refusal::Address(2)));
        // The same address as IPv4-mapped IPv6 is the same source.
        assert_eq!(
            l.admit("::ffff:192.0.2.1".parse().unwrap()).err(),
            Some(Refusal::Address(2))
        );
        let _s3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).err(), Some(Refusal::Edge(3)));
        drop(s1);
        assert_eq!(l.total(), 2);
        assert!(l.admit(a).is_ok(), "a freed slot is free again");
    }
}
