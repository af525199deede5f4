//! The `new_peer` fuzz target: arbitrary `NewPeer` field values (mostly arbitrary
//! strings, sometimes likely-valid ones) through `store_peer`.

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use peerbook::{Error, ManualClock, NewIceServer, NewPeer, PeerRecord, Secret};

use crate::{memory_book, START_MS};

/// A string: mostly arbitrary, sometimes a likely-valid value.
#[derive(Debug, Arbitrary)]
enum Text {
    Raw(String),
    Prefixed(u8, String),
    Long(u16, char),
}

impl Text {
    fn make(self, prefixes: &[&str]) -> String {
        match self {
            Text::Raw(s) => s,
            Text::Prefixed(p, s) => {
                let prefix = prefixes.get(usize::from(p) % prefixes.len().max(1));
                format!("{}{s}", prefix.copied().unwrap_or(""))
            }
            Text::Long(n, c) => std::iter::repeat_n(c, usize::from(n % 5000)).collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum SecretInput {
    Bytes(Vec<u8>),
    Long(u16),
}

impl SecretInput {
    fn make(self) -> Secret {
        match self {
            SecretInput::Bytes(b) => Secret::new(b),
            SecretInput::Long(n) => Secret::new(vec![0xA5; usize::from(n % 5000)]),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct IceInput {
    urls: Vec<Text>,
    username: Option<Text>,
    credential: Option<SecretInput>,
}

#[derive(Debug, Arbitrary)]
struct NewPeerInput {
    peer_id: Text,
    display_name: Text,
    public_key: Text,
    shared_secret: Option<SecretInput>,
    ice_servers: Vec<IceInput>,
    cached_candidates: Vec<Text>,
    last_known_ip: Option<IpAddr>,
}

const URL_PREFIXES: &[&str] = &["stun:", "stuns:", "turn:", "turns:", "stun:host", "http://"];

impl NewPeerInput {
    fn make(self) -> NewPeer {
        NewPeer {
            peer_id: self.peer_id.make(&["peer-", "", "A"]),
            display_name: self.display_name.make(&["", " ", "Alice "]),
            public_key: self.public_key.make(&["{\"kty\":\"EC\"}", ""]),
            shared_secret: self.shared_secret.map(SecretInput::make),
            ice_servers: self
                .ice_servers
                .into_iter()
                .take(12)
                .map(|s| NewIceServer {
                    urls: s
                        .urls
                        .into_iter()
                        .take(6)
                        .map(|u| u.make(URL_PREFIXES))
                        .collect(),
                    username: s.username.map(|u| u.make(&["user", ""])),
                    credential: s.credential.map(SecretInput::make),
                })
                .collect(),
            cached_candidates: self
                .cached_candidates
                .into_iter()
                .take(40)
                .map(|c| c.make(&["candidate:1 1 udp 2122260223 192.0.2.1 ", ""]))
                .collect(),
            last_known_ip: self.last_known_ip,
        }
    }
}

/// Arbitrary `NewPeer` field values: `store_peer` stores them or refuses them as
/// invalid input, never anything else; what it stores reads back the same, and its
/// secrets open to what was given.
pub fn new_peer(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = NewPeerInput::arbitrary(&mut u) else {
        return;
    };
    let new = input.make();
    let copy = new.clone();
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let shared = new.shared_secret.clone();
    let credentials: Vec<Option<Secret>> = new
        .ice_servers
        .iter()
        .map(|s| s.credential.clone())
        .collect();
    match book.store_peer(new) {
        Ok(record) => {
            let stored = book
                .get_peer(record.peer_id.as_str())
                .expect("get_peer of a stored peer")
                .expect("a stored peer is found");
            assert_eq!(
                stored, record,
                "get_peer differs from what store_peer returned"
            );
            let opened = book
                .open_shared_secret(&stored)
                .expect("open_shared_secret");
            assert_eq!(
                opened.as_ref().map(Secret::expose),
                shared.as_ref().map(Secret::expose),
                "the shared secret opens to something else"
            );
            for (i, c) in credentials.iter().enumerate() {
                let opened = book
                    .open_ice_credential(&stored, i)
                    .expect("open_ice_credential");
                assert_eq!(
                    opened.as_ref().map(Secret::expose),
                    c.as_ref().map(Secret::expose),
                    "ICE credential {i} opens to something else"
                );
            }
            // What was stored must also survive the stored encoding.
            assert_eq!(PeerRecord::decode(&stored.encode()).as_ref(), Ok(&stored));
            // Storing it again is an upsert that keeps every given field.
            let again = book
                .store_peer(copy)
                .expect("an accepted NewPeer stores again");
            assert_eq!(
                (
                    &again.public_key,
                    &again.cached_candidates,
                    again.last_known_ip
                ),
                (
                    &stored.public_key,
                    &stored.cached_candidates,
                    stored.last_known_ip
                ),
                "a repeated store_peer changed a given field"
            );
        }
        Err(Error::InvalidInput { .. }) => {
            assert_eq!(book.get_storage_stats().expect("stats").peer_count, 0);
        }
        Err(other) => panic!("store_peer of a NewPeer: expected Ok or InvalidInput, got {other:?}"),
    }
}
