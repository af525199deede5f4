//! Applying the write-behind queue's [`Op`]s to the book, on the writer
//! thread: each op as the book calls it records (an upsert for a connection,
//! a session, a failed dial, a folded state), and the peer's address slots
//! made room in at the book's cap.

use peerbook::address::{validate_address, PeerAddress, MAX_ADDRESSES};
use peerbook::{AddressSource, Backend, NewPeer, PeerBook, PeerRecord, QualityUpdate};

use crate::writer::{Op, Via};

/// Apply `op`: the peer's record afterwards, `None` when the book has no such peer.
pub(crate) fn apply<B: Backend>(
    book: &PeerBook<B>,
    op: Op,
) -> peerbook::Result<Option<PeerRecord>> {
    let record = match op {
        Op::Connected {
            peer,
            public_key,
            via,
        } => connected(book, &peer, public_key, via)?,
        Op::Session { peer, observation } => match book.get_peer(&peer)? {
            // a session with a peer we never connected to (inbound only) is
            // not counted: it would rank a stranger as a good candidate
            Some(r) if r.last_connected == 0 => r,
            Some(_) => book.record_session(&peer, &observation)?,
            None => return Ok(None),
        },
        Op::DialFailed { peer, addrs } => {
            if book.get_peer(&peer)?.is_none() {
                return Ok(None); // never met: nothing to count against
            }
            let mut record = book.increment_reconnection_attempts(&peer)?;
            for addr in addrs {
                // an address the peer does not have is refused: nothing to mark
                if let Ok(marked) = book.record_address_result(&peer, &addr, false) {
                    record = marked;
                }
            }
            record
        }
        Op::State { peer, state } => {
            // A peer stored without its key (a peer id that is a hash of it,
            // stored on connection) gets it here: the book sets an unset key
            // once, and refuses a change of a set one (`PublicKeyChanged`).
            let public_key = state.public_key.unwrap_or_default();
            let mut record = match state.connected {
                Some(via) => connected(book, &peer, Some(public_key), via)?,
                None => book.learn_peer(NewPeer {
                    peer_id: peer.clone(),
                    public_key,
                    ..Default::default()
                })?,
            };
            if let Some(ms) = state.latency_ms {
                record = book.update_connection_quality(
                    &peer,
                    QualityUpdate {
                        latency_ms: Some(Some(ms)),
                        ..Default::default()
                    },
                )?;
            }
            if !state.addresses.is_empty() {
                record = fit_addresses(book, &peer, state.addresses)?;
            }
            for (key, value) in state.metadata {
                record = book.set_metadata(&peer, &key, Some(&value))?;
            }
            record
        }
    };
    Ok(Some(record))
}

/// Record a connection to `peer` (see [`Op::Connected`]).
fn connected<B: Backend>(
    book: &PeerBook<B>,
    peer: &str,
    public_key: Option<String>,
    via: Via,
) -> peerbook::Result<PeerRecord> {
    let new = NewPeer {
        peer_id: peer.to_string(),
        public_key: public_key.unwrap_or_default(),
        ..Default::default()
    };
    // Anyone can connect to us under a fresh identity: an inbound
    // connection is a success only from a peer we once connected to
    // ourselves (`last_connected` is set by `store_peer` alone); before
    // that the peer is only heard of (attempts and blacklist kept).
    let dialed_before = || -> peerbook::Result<bool> {
        Ok(book.get_peer(peer)?.is_some_and(|r| r.last_connected > 0))
    };
    let (dialed, addr) = match via {
        Via::Dialed(addr) => (true, addr),
        Via::Inbound => (false, None),
    };
    let mut record = if dialed || dialed_before()? {
        book.store_peer(new)?
    } else {
        book.learn_peer(new)?
    };
    if let Some(addr) = addr {
        // a slot is made for it; an address the book refuses is not kept,
        // and the connection is recorded all the same
        let fitted = fit_addresses(book, peer, vec![(addr.clone(), AddressSource::Observed)])?;
        if fitted.addresses.iter().any(|a| a.addr == addr) {
            record = book.record_address_result(peer, &addr, true)?;
        }
    }
    Ok(record)
}

/// Add `addrs` to the peer's addresses in one write, making room at the book's
/// cap of [`MAX_ADDRESSES`]: a known address is refreshed (a manual one stays
/// manual, an observed one is not downgraded to reported); a new one takes a free
/// slot, else the slot of the least useful address not among `addrs` (see
/// [`eviction_rank`]). A new
/// reported address never displaces a working or manual one; the address of a
/// working connection (observed) displaces any but a manual one. What does not
/// fit, or the book refuses, is left out. Returns the stored record.
fn fit_addresses<B: Backend>(
    book: &PeerBook<B>,
    peer: &str,
    addrs: Vec<(String, AddressSource)>,
) -> peerbook::Result<PeerRecord> {
    book.update_peer(peer, |record| {
        let list = &mut record.addresses;
        for (addr, source) in &addrs {
            if validate_address("addr", addr).is_err() {
                continue;
            }
            if let Some(known) = list.iter_mut().find(|a| &a.addr == addr) {
                // manual (the user's) stays manual, so it never leaves; observed
                // is not downgraded to reported
                let keep = match known.source {
                    AddressSource::Manual => true,
                    AddressSource::Observed => *source != AddressSource::Observed,
                    AddressSource::Reported | AddressSource::Discovery => false,
                };
                if !keep {
                    known.source = *source;
                }
                continue;
            }
            if list.len() >= MAX_ADDRESSES {
                let worst = list
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !addrs.iter().any(|(new, _)| *new == a.addr))
                    .filter_map(|(i, a)| eviction_rank(a).map(|rank| (rank, i)))
                    .filter(|((class, ..), _)| *source == AddressSource::Observed || *class < 2)
                    .min();
                match worst {
                    Some((_, i)) => {
                        list.remove(i);
                    }
                    None => continue, // nothing it may displace
                }
            }
            list.push(PeerAddress {
                addr: addr.clone(),
                source: *source,
                ..PeerAddress::default()
            });
        }
        Ok(())
    })
}

/// Which address leaves first when the slots are full (smallest first): one
/// whose last attempt failed (earliest failure first), then one never tried
/// (oldest first), then one that worked (least recently first); within each,
/// a reported or discovered one before an observed one. A manual address
/// (configured by the user) never leaves: `None`. The first field is the class
/// (0 failed, 1 untried, 2 worked).
fn eviction_rank(a: &PeerAddress) -> Option<(u8, bool, u64)> {
    let observed = match a.source {
        AddressSource::Manual => return None,
        AddressSource::Observed => true,
        AddressSource::Reported | AddressSource::Discovery => false,
    };
    Some(if a.last_worked() {
        (2, observed, a.last_success.unwrap_or(0))
    } else if let Some(failed) = a.last_failure {
        (0, observed, failed)
    } else {
        (1, observed, 0)
    })
}
