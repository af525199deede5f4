//! The in-memory copy of the book's addresses the swarm dials from: filled only
//! from what the book answered (so only peers the book took), at most `cap`
//! peers, the least recently updated or used one leaving first, and a peer the
//! book no longer has leaves at once.

use std::collections::{BTreeMap, HashMap};

use libp2p::{Multiaddr, PeerId};

pub(crate) struct Mirror {
    peers: HashMap<PeerId, (u64, Vec<Multiaddr>)>,
    /// Peers by last update or use (tick), oldest first.
    by_use: BTreeMap<u64, PeerId>,
    tick: u64,
    cap: usize,
}

impl Mirror {
    pub(crate) fn new(cap: usize) -> Self {
        Mirror {
            peers: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.get(peer).map_or(&[], |(_, a)| a.as_slice())
    }

    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// The book holds `addrs` for `peer` (none: forget it).
    pub(crate) fn set(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty() {
            self.remove(&peer);
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.peers.insert(peer, (self.tick, addrs)) {
            self.by_use.remove(&old);
        }
        self.by_use.insert(self.tick, peer);
        while self.peers.len() > self.cap {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.peers.remove(&oldest);
        }
    }

    /// The swarm dials `peer`: it becomes the most recently used.
    pub(crate) fn touch(&mut self, peer: &PeerId) {
        if let Some((tick, _)) = self.peers.get_mut(peer) {
            self.by_use.remove(tick);
            self.tick += 1;
            *tick = self.tick;
            self.by_use.insert(self.tick, *peer);
        }
    }

    pub(crate) fn remove(&mut self, peer: &PeerId) {
        if let Some((tick, _)) = self.peers.remove(peer) {
            self.by_use.remove(&tick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mirror;
    use libp2p::{Multiaddr, PeerId};

    fn addr(i: u8) -> Vec<Multiaddr> {
        vec![format!("/ip4/1.2.3.{i}/tcp/1").parse().unwrap()]
    }

    #[test]
    fn holds_at_most_cap_peers_least_recently_used_leaving_first() {
        let mut m = Mirror::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        m.set(a, addr(1));
        m.set(b, addr(2));
        m.touch(&a); // b is now the least recently used
        m.set(c, addr(3));
        assert_eq!(m.len(), 2);
        assert!(m.contains(&a) && m.contains(&c) && !m.contains(&b));
        m.set(a, Vec::new()); // the book has no address (or no peer) left
        assert!(!m.contains(&a));
        m.remove(&c);
        assert_eq!((m.len(), m.by_use.len()), (0, 0));
    }
}
