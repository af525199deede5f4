//! Open time and memory of a large file-backed book (issue 19's "file backend open /
//! peak RSS" row), in two steps so that each open is measured in a fresh process:
//!
//! ```text
//! cargo run --release -p peerbook-file --example open_rss -- build DIR 1000000
//! cargo run --release -p peerbook-file --example open_rss -- open DIR
//! ```
//!
//! `build` makes 256 realistic peers through [`PeerBook`] (a JWK public key, a sealed
//! shared secret, a TURN credential, eight ICE candidates: about 1.7 KB stored, as
//! the bench generator's), then writes `N` peers into a [`FileBackend`] by giving each
//! a copy of a template's entries under its own peer id (records, every index
//! entry: the id as it is, or negated in by_last_seen and rank keys), and compacts
//! once, so the book is one snapshot and an empty log.
//! `open` opens it once and prints the open time, the peak RSS (`VmHWM`) and the
//! RSS after open (`VmRSS`) of this process; run it several times for a median.

use std::time::Instant;

use peerbook::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use peerbook::{MasterKey, MemoryBackend, NewIceServer, NewPeer, Options, PeerBook, Secret};
use peerbook_file::{FileBackend, FileOptions};

const TEMPLATES: usize = 256;
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A 52-character libp2p-like id, unique per `i`.
fn peer_id(i: usize) -> String {
    let mut id = String::from("12D3KooW");
    let mut n = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
    for k in 0..44 {
        if k == 11 {
            n = (i as u64).wrapping_add(0x1234_5678_9abc).wrapping_mul(31);
        }
        id.push(char::from(BASE58[(n % 58) as usize]));
        n = n / 58 + (k as u64) * 7919;
    }
    id
}

fn text(seed: usize, len: usize) -> String {
    (0..len)
        .map(|k| char::from(BASE58[(seed * 131 + k * 17 + k * k) % 58]))
        .collect()
}

fn new_peer(i: usize) -> NewPeer {
    let candidates = (0..8)
        .map(|c| {
            format!(
                "candidate:{} 1 udp 2122260223 192.168.{}.{} {} typ host generation 0 ufrag {} network-id 1 network-cost 10",
                1_000_000_000 + i * 8 + c,
                i % 256,
                c + 1,
                10_000 + (i * 13 + c) % 50_000,
                text(i + c, 4)
            )
        })
        .collect();
    NewPeer {
        peer_id: peer_id(i),
        display_name: format!("peer {i}'s laptop"),
        public_key: format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            text(i, 43),
            text(i + 7, 43)
        ),
        shared_secret: Some(Secret::from(text(i + 3, 32))),
        ice_servers: vec![
            NewIceServer {
                urls: vec!["stun:stun.l.google.com:19302".into()],
                username: None,
                credential: None,
            },
            NewIceServer {
                urls: vec![
                    "turn:turn-eu-west.example.net:3478?transport=udp".into(),
                    "turns:turn-eu-west.example.net:5349?transport=tcp".into(),
                ],
                username: Some(format!("u{}", text(i, 12))),
                credential: Some(Secret::from(text(i + 1, 24))),
            },
        ],
        cached_candidates: candidates,
        last_known_ip: Some(
            format!("203.0.{}.{}", i % 256, 1 + i % 250)
                .parse()
                .unwrap(),
        ),
    }
}

/// Every byte of `bytes` negated: how by_last_seen and rank keys hold a peer id.
fn negated(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| !b).collect()
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut p = 0;
    while p + from.len() <= out.len() {
        if &out[p..p + from.len()] == from {
            out[p..p + from.len()].copy_from_slice(to);
            p += from.len();
        } else {
            p += 1;
        }
    }
    out
}

/// Each template peer's entries per space (meta apart), and the meta entries.
type Templates = (Vec<Vec<(Space, Vec<u8>, Vec<u8>)>>, Vec<(Vec<u8>, Vec<u8>)>);

fn templates() -> Templates {
    let memory = MemoryBackend::new();
    let mut options = Options::new(MasterKey::from_bytes([0x5a; 32]));
    options.max_peers = 100_000_000;
    let book = PeerBook::open(memory.clone(), options).expect("open the template book");
    for i in 0..TEMPLATES {
        book.store_peer(new_peer(i)).expect("store a template");
    }
    let mut per_peer = vec![Vec::new(); TEMPLATES];
    let mut meta = Vec::new();
    for space in Space::ALL {
        memory
            .scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
                if space == Space::Meta {
                    meta.push((k.to_vec(), v.to_vec()));
                } else if let Some(i) = (0..TEMPLATES).find(|&i| {
                    let id = peer_id(i);
                    let hidden = negated(id.as_bytes());
                    k.windows(id.len())
                        .any(|w| w == id.as_bytes() || w == hidden)
                }) {
                    per_peer[i].push((space, k.to_vec(), v.to_vec()));
                }
                std::ops::ControlFlow::Continue(())
            })
            .expect("scan");
    }
    (per_peer, meta)
}

fn build(dir: &str, n: usize, compact: bool) {
    let started = Instant::now();
    let (per_peer, meta) = templates();
    let peer_bytes: usize = per_peer[0]
        .iter()
        .filter(|(s, _, _)| *s == Space::Peers)
        .map(|(_, k, v)| k.len() + v.len())
        .sum();
    eprintln!("template peer record: {peer_bytes} bytes (key + value)");
    let options = FileOptions::default().with_auto_compact(false);
    let backend = FileBackend::open(dir, options).expect("open the book");
    let mut batch = WriteBatch::new();
    for (k, v) in meta {
        batch.put(Space::Meta, k, v);
    }
    for i in 0..n {
        let t = i % TEMPLATES;
        let (from, to) = (peer_id(t), peer_id(i));
        let (from_hidden, to_hidden) = (negated(from.as_bytes()), negated(to.as_bytes()));
        for (space, k, v) in &per_peer[t] {
            let k = replace(k, from.as_bytes(), to.as_bytes());
            batch.put(
                *space,
                replace(&k, &from_hidden, &to_hidden),
                replace(v, from.as_bytes(), to.as_bytes()),
            );
        }
        if batch.len() >= 3000 {
            let full = std::mem::take(&mut batch);
            backend.write(full, Durability::Buffered).expect("write");
        }
    }
    backend.write(batch, Durability::Buffered).expect("write");
    if compact {
        backend.compact().expect("compact");
    }
    let stats = backend.stats();
    println!(
        "built {n} peers in {:.1} s: snapshot {} bytes, log {} bytes",
        started.elapsed().as_secs_f64(),
        stats.snapshot_bytes,
        stats.log_bytes
    );
}

fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open(dir: &str) {
    let started = Instant::now();
    let backend = FileBackend::open(dir, FileOptions::default()).expect("open the book");
    let took = started.elapsed();
    let (peak, steady) = (status("VmHWM:"), status("VmRSS:"));
    println!(
        "open {:.0} ms, snapshot entries {}, log frames {}, peak RSS {} MiB, RSS after open {} MiB, peak/steady {:.2}",
        took.as_secs_f64() * 1e3,
        backend.recovery().snapshot_entries,
        backend.recovery().log_frames,
        peak / 1024,
        steady / 1024,
        peak as f64 / steady.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some(mode @ ("build" | "build-log")), Some(dir)) => {
            let n = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(100_000);
            build(dir, n, mode == "build");
        }
        (Some("open"), Some(dir)) => open(dir),
        _ => eprintln!("usage: open_rss build|build-log DIR [N] | open_rss open DIR"),
    }
}
