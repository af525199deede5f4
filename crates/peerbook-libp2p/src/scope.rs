//! How far an address reaches, to decide which addresses a remote peer reports
//! are worth persisting and redialing: a peer met over the internet does not get
//! us to store (and later dial) 127.0.0.1:6379, 169.254.169.254:80 or a LAN host.
//! Pure functions over multiaddrs.

use std::net::{Ipv4Addr, Ipv6Addr};

use libp2p::core::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Reach of an address or a connection, narrowest first (`pub` for the sealed
/// [`Observe`](crate::Observe) trait; not reachable from outside the crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// This host: loopback, `localhost`, a unix socket, the memory transport.
    Loopback,
    /// The local network: private (RFC 1918, shared 100.64/10, 192.0.0/24,
    /// benchmarking 198.18/15, IPv6 ULA, local-use NAT64) and link-local
    /// addresses, `.local` names, IPv6 zones, `/dnsaddr` names. IPv4-compatible
    /// and NAT64 (64:ff9b::/96) IPv6 addresses count as their IPv4 address.
    Local,
    /// Anything else (a DNS name is taken at its word).
    Global,
}

/// The reach of `addr`: the narrowest reach of all its components, since a
/// transport may dial any of them (libp2p-tcp takes the IP and port from the end
/// of the address and ignores what comes before; libp2p-dns resolves a DNS
/// component wherever it is). `None` for an address never worth dialing: one
/// that does not start with a host (an IP, a DNS name, a unix socket, the memory
/// transport), or has an unspecified, multicast, broadcast or reserved IP, or is
/// empty.
///
/// A DNS name is taken at its word (a public name that resolves to a private IP
/// is not caught), except `localhost`, `.local`, a name that is an IP literal (a
/// resolver answers it as is) and a name embedding an IPv4 address as
/// `a.b.c.d` or `a-b-c-d` (wildcard DNS such as nip.io, sslip.io answers that
/// address): these count as what they name. A `/dnsaddr` name reaches at most
/// the local network (its TXT records may hold any address), an IPv6 zone too.
pub(crate) fn scope(addr: &Multiaddr) -> Option<Scope> {
    let mut components = addr.iter().peekable();
    if !matches!(
        components.peek()?,
        Protocol::Ip4(_)
            | Protocol::Ip6(_)
            | Protocol::Ip6zone(_)
            | Protocol::Dns(_)
            | Protocol::Dns4(_)
            | Protocol::Dns6(_)
            | Protocol::Dnsaddr(_)
            | Protocol::Unix(_)
            | Protocol::Memory(_)
    ) {
        return None; // not a host: nothing to dial first
    }
    let mut narrowest = Scope::Global;
    for component in components {
        let reach = match component {
            Protocol::Ip4(ip) => ip4_scope(ip)?,
            Protocol::Ip6(ip) => ip6_scope(ip)?,
            Protocol::Ip6zone(_) => Scope::Local,
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => name_scope(&name)?,
            Protocol::Dnsaddr(name) => name_scope(&name)?.min(Scope::Local),
            Protocol::Unix(_) | Protocol::Memory(_) => Scope::Loopback,
            _ => continue, // a port, a protocol, a peer id: no host of its own
        };
        narrowest = narrowest.min(reach);
    }
    Some(narrowest)
}

/// The reach of a DNS name (see [`scope`]).
fn name_scope(name: &str) -> Option<Scope> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    // A resolver maps other characters to ASCII (IDNA: a full-width
    // `ｌｏｃａｌｈｏｓｔ` is `localhost`) where these checks would not see it:
    // a name of anything but ASCII letters, digits, `-`, `_`, `.` (or an IPv6
    // literal's brackets and colons) is not kept.
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.[]:".contains(&b))
    {
        return None;
    }
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<Ipv4Addr>() {
        return ip4_scope(ip);
    }
    if let Ok(ip) = literal.parse::<Ipv6Addr>() {
        return ip6_scope(ip);
    }
    let mut reach = if name == "localhost" || name.ends_with(".localhost") {
        Scope::Loopback
    } else if name == "local" || name.ends_with(".local") {
        Scope::Local
    } else {
        Scope::Global
    };
    for ip in embedded_ip4s(&name) {
        reach = reach.min(ip4_scope(ip)?);
    }
    Some(reach)
}

/// IPv4 addresses written into a DNS name: four consecutive numeric labels
/// (`10.0.0.1.nip.io`) or four numeric dash-separated parts of one label
/// (`app-127-0-0-1.sslip.io`).
fn embedded_ip4s(name: &str) -> Vec<Ipv4Addr> {
    fn quads(parts: &[&str], out: &mut Vec<Ipv4Addr>) {
        for w in parts.windows(4) {
            if let Ok(ip) = w.join(".").parse::<Ipv4Addr>() {
                out.push(ip);
            }
        }
    }
    let mut out = Vec::new();
    let labels: Vec<&str> = name.split('.').collect();
    quads(&labels, &mut out);
    for label in labels {
        quads(&label.split('-').collect::<Vec<_>>(), &mut out);
    }
    out
}

fn ip4_scope(ip: Ipv4Addr) -> Option<Scope> {
    let [a, b, c, _] = ip.octets();
    if a == 0 || ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        None // "this network", multicast, broadcast, reserved
    } else if ip.is_loopback() {
        Some(Scope::Loopback)
    } else if ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        // private, link-local, shared (carrier-grade NAT) 100.64/10, IETF
        // protocol assignments 192.0.0/24, benchmarking 198.18/15
        Some(Scope::Local)
    } else {
        Some(Scope::Global)
    }
}

fn ip6_scope(ip: Ipv6Addr) -> Option<Scope> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ip4_scope(v4);
    }
    let segments = ip.segments();
    let first = segments[0];
    let embedded = Ipv4Addr::new(
        (segments[6] >> 8) as u8,
        segments[6] as u8,
        (segments[7] >> 8) as u8,
        segments[7] as u8,
    );
    if ip.is_unspecified() || ip.is_multicast() {
        None
    } else if ip.is_loopback() {
        Some(Scope::Loopback)
    } else if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        ip4_scope(embedded) // IPv4-compatible (deprecated), NAT64 well-known prefix
    } else if first & 0xffc0 == 0xfe80
        || first & 0xfe00 == 0xfc00
        || segments[..3] == [0x64, 0xff9b, 1]
    {
        Some(Scope::Local) // link-local, unique local, local-use NAT64
    } else {
        Some(Scope::Global)
    }
}

/// The reach of a connection whose remote end is `remote`, judged strictly: the
/// widest reach of its host components; global for a relayed connection
/// (`/p2p-circuit` anywhere: the peer is behind the relay, wherever the relay
/// is) and for an address never worth dialing.
pub(crate) fn connection_scope(remote: &Multiaddr) -> Scope {
    if remote.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return Scope::Global;
    }
    let mut widest = None;
    for component in remote.iter() {
        let reach = match component {
            Protocol::Ip4(ip) => ip4_scope(ip),
            Protocol::Ip6(ip) => ip6_scope(ip),
            Protocol::Ip6zone(_) => Some(Scope::Local),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => name_scope(&name),
            Protocol::Dnsaddr(name) => name_scope(&name).map(|r| r.min(Scope::Local)),
            Protocol::Unix(_) | Protocol::Memory(_) => Some(Scope::Loopback),
            _ => continue,
        };
        let Some(reach) = reach else {
            return Scope::Global;
        };
        widest = widest.max(Some(reach));
    }
    widest.unwrap_or(Scope::Global)
}

/// Keep `addr`, reported by a peer over a connection of reach `connection`? A
/// global address always; a local one only over a local or loopback connection; a
/// loopback one only over a loopback connection; one never worth dialing never,
/// nor one whose text does not read back as it (see [`round_trips`]).
pub(crate) fn keep_reported(addr: &Multiaddr, connection: Scope) -> bool {
    round_trips(addr) && scope(addr).is_some_and(|reach| connection <= reach)
}

/// Does the text of `addr` (what the book stores, and parses again before a
/// dial) read back as `addr`? Not always: multiaddr prints an `/sni` or
/// `/ip6zone` value as is, so a `/` in it reads back as more components
/// (`/tls/sni/x/ip4/127.0.0.1/tcp/6379` ends in a loopback address that
/// libp2p-tcp dials), and the scope judged here would not be the one dialed.
pub(crate) fn round_trips(addr: &Multiaddr) -> bool {
    addr.to_string()
        .parse::<Multiaddr>()
        .is_ok_and(|back| back == *addr)
}

#[cfg(test)]
mod tests {
    use super::{connection_scope, keep_reported, round_trips, scope, Scope};
    use libp2p::Multiaddr;

    fn m(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn scopes_of_addresses() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/6379", Some(Scope::Loopback)),
            ("/ip4/127.9.9.9/tcp/1", Some(Scope::Loopback)),
            ("/ip6/::1/tcp/1", Some(Scope::Loopback)),
            ("/ip6/::ffff:127.0.0.1/tcp/1", Some(Scope::Loopback)),
            ("/dns4/localhost/tcp/1", Some(Scope::Loopback)),
            ("/dns/LOCALHOST./tcp/1", Some(Scope::Loopback)),
            ("/dns6/db.localhost/tcp/1", Some(Scope::Loopback)),
            ("/unix/%2Ftmp%2Fsock", Some(Scope::Loopback)),
            ("/memory/1234", Some(Scope::Loopback)),
            ("/ip4/10.1.2.3/tcp/1", Some(Scope::Local)),
            ("/ip4/172.16.0.1/tcp/1", Some(Scope::Local)),
            ("/ip4/172.31.255.1/tcp/1", Some(Scope::Local)),
            ("/ip4/192.168.1.1/udp/1/quic-v1", Some(Scope::Local)),
            ("/ip4/169.254.169.254/tcp/80", Some(Scope::Local)),
            ("/ip4/100.64.0.1/tcp/1", Some(Scope::Local)),
            ("/ip4/100.127.255.1/tcp/1", Some(Scope::Local)),
            ("/ip6/fe80::1/tcp/1", Some(Scope::Local)),
            ("/ip6/fd00::1/tcp/1", Some(Scope::Local)),
            ("/ip6/fc00::1/tcp/1", Some(Scope::Local)),
            ("/ip6/::ffff:10.0.0.1/tcp/1", Some(Scope::Local)),
            ("/dns4/printer.local/tcp/1", Some(Scope::Local)),
            ("/ip4/0.0.0.0/tcp/1", None),
            ("/ip4/0.1.2.3/tcp/1", None),
            ("/ip6/::/tcp/1", None),
            ("/ip4/224.0.0.1/udp/1", None),
            ("/ip4/255.255.255.255/udp/1", None),
            ("/ip4/240.0.0.1/tcp/1", None),
            ("/ip6/ff02::1/udp/1", None),
            ("/ip4/1.2.3.4/tcp/4001", Some(Scope::Global)),
            ("/ip4/172.32.0.1/tcp/1", Some(Scope::Global)),
            ("/ip4/100.128.0.1/tcp/1", Some(Scope::Global)),
            ("/ip4/192.0.2.1/tcp/1", Some(Scope::Global)),
            ("/ip6/2001:db8::1/tcp/1", Some(Scope::Global)),
            ("/ip6/fec0::1/tcp/1", Some(Scope::Global)),
            ("/dns4/example.org/tcp/1", Some(Scope::Global)),
            ("/dns4/localhost.example.org/tcp/1", Some(Scope::Global)),
        ];
        for (addr, expected) in cases {
            assert_eq!(scope(&m(addr)), expected, "{addr}");
        }
        assert_eq!(scope(&Multiaddr::empty()), None);
    }

    /// Review 3, finding 1: only the first component was judged, while
    /// libp2p-tcp dials the IP at the end and libp2p-dns resolves a DNS
    /// component anywhere. Each of these, reported over a public connection,
    /// would have been kept and dialed.
    #[test]
    fn every_component_is_judged_narrowest_wins() {
        let peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let cases = [
            (
                "/ip4/1.2.3.4/ip4/127.0.0.1/tcp/6379".to_string(),
                Some(Scope::Loopback),
            ),
            (format!("/p2p/{peer}/ip4/169.254.169.254/tcp/80"), None),
            (
                "/ip6zone/eth0/ip6/fe80::1/tcp/1".to_string(),
                Some(Scope::Local),
            ),
            (
                "/ip6zone/eth0/ip6/2001:4860::1/tcp/1".to_string(),
                Some(Scope::Local),
            ),
            ("/dns/127.0.0.1/tcp/6379".to_string(), Some(Scope::Loopback)),
            ("/dns/::1/tcp/6379".to_string(), Some(Scope::Loopback)),
            ("/dns4/10.0.0.1/tcp/6379".to_string(), Some(Scope::Local)),
            ("/dns/0.0.0.0/tcp/1".to_string(), None),
            ("/dns4/\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/tcp/6379".to_string(), None),
            ("/dns4/b\u{fc}cher.example/tcp/1".to_string(), None),
            ("/dns4/a_b-c.example/tcp/1".to_string(), Some(Scope::Global)),
            (
                "/dns4/127.0.0.1.nip.io/tcp/6379".to_string(),
                Some(Scope::Loopback),
            ),
            (
                "/dns4/app.10.1.2.3.sslip.io/tcp/1".to_string(),
                Some(Scope::Local),
            ),
            (
                "/dns4/app-192-168-0-1.nip.io/tcp/1".to_string(),
                Some(Scope::Local),
            ),
            (
                "/dns4/1.2.3.4.nip.io/tcp/1".to_string(),
                Some(Scope::Global),
            ),
            ("/dnsaddr/evil.example".to_string(), Some(Scope::Local)),
            (
                "/ip4/1.2.3.4/tcp/1/dnsaddr/evil.example".to_string(),
                Some(Scope::Local),
            ),
            (
                "/ip4/1.2.3.4/tcp/1/dns4/localhost/tcp/2".to_string(),
                Some(Scope::Loopback),
            ),
            (
                "/dns4/example.org/ip4/10.0.0.1/tcp/1".to_string(),
                Some(Scope::Local),
            ),
            (
                "/ip4/1.2.3.4/tcp/1/unix/%2Ftmp%2Fsock".to_string(),
                Some(Scope::Loopback),
            ),
            ("/ip4/1.2.3.4/ip4/0.0.0.0/tcp/1".to_string(), None),
            ("/tcp/1/ip4/1.2.3.4".to_string(), None),
            ("/p2p-circuit/ip4/1.2.3.4/tcp/1".to_string(), None),
            (format!("/p2p/{peer}"), None),
            // a relayed address is as far as its relay
            (
                format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}/p2p-circuit/p2p/{peer}"),
                Some(Scope::Global),
            ),
            (
                format!("/ip4/10.0.0.5/tcp/1/p2p/{peer}/p2p-circuit"),
                Some(Scope::Local),
            ),
        ];
        for (addr, expected) in &cases {
            assert_eq!(scope(&m(addr)), *expected, "{addr}");
            // over the internet, none of the narrower ones is kept
            let kept = keep_reported(&m(addr), Scope::Global);
            assert_eq!(kept, *expected == Some(Scope::Global), "{addr}");
        }
    }

    /// Review 3, finding 5: a connection relayed through a LAN or loopback relay
    /// counted as local (its first component), letting the relayed peer plant
    /// LAN and loopback addresses; a few non-global ranges counted as global.
    #[test]
    fn relayed_connections_are_global_and_special_ranges_are_not() {
        let relay = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let connections = [
            (
                format!("/ip4/10.0.0.5/tcp/1/p2p/{relay}/p2p-circuit/p2p/{relay}"),
                Scope::Global,
            ),
            (
                format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}/p2p-circuit"),
                Scope::Global,
            ),
            (
                "/ip4/127.0.0.1/ip4/1.2.3.4/tcp/1".to_string(),
                Scope::Global,
            ),
            (
                "/ip4/10.0.0.1/ip4/127.0.0.1/tcp/1".to_string(),
                Scope::Local,
            ),
            ("/ip4/127.0.0.1/tcp/1".to_string(), Scope::Loopback),
            ("/dns4/localhost/tcp/1".to_string(), Scope::Loopback),
            (format!("/p2p/{relay}"), Scope::Global),
        ];
        for (remote, expected) in &connections {
            assert_eq!(connection_scope(&m(remote)), *expected, "{remote}");
        }
        let addresses = [
            ("/ip4/192.0.0.8/tcp/1", Some(Scope::Local)),
            ("/ip4/198.18.0.1/tcp/1", Some(Scope::Local)),
            ("/ip4/198.19.255.1/tcp/1", Some(Scope::Local)),
            ("/ip4/198.20.0.1/tcp/1", Some(Scope::Global)),
            ("/ip4/192.0.1.1/tcp/1", Some(Scope::Global)),
            ("/ip6/::127.0.0.1/tcp/1", Some(Scope::Loopback)),
            ("/ip6/::10.0.0.1/tcp/1", Some(Scope::Local)),
            ("/ip6/::0.0.0.2/tcp/1", None),
            ("/ip6/64:ff9b::127.0.0.1/tcp/1", Some(Scope::Loopback)),
            ("/ip6/64:ff9b::192.168.1.1/tcp/1", Some(Scope::Local)),
            ("/ip6/64:ff9b::8.8.8.8/tcp/1", Some(Scope::Global)),
            ("/ip6/64:ff9b:1::8.8.8.8/tcp/1", Some(Scope::Local)),
        ];
        for (addr, expected) in addresses {
            assert_eq!(scope(&m(addr)), expected, "{addr}");
        }
    }

    /// Review 5, finding 1: a value printed as is, with a `/` in it, reads
    /// back as other components; such an address is never kept.
    #[test]
    fn an_address_whose_text_reads_back_otherwise_is_not_kept() {
        use libp2p::core::multiaddr::Protocol;
        let public = m("/ip4/1.2.3.4/tcp/1/tls");
        let sni = public
            .clone()
            .with(Protocol::Sni("x/ip4/127.0.0.1/tcp/6379".into()));
        let zone = public.with(Protocol::Ip6zone("eth0/ip4/127.0.0.1/tcp/6379".into()));
        for addr in [sni, zone] {
            assert!(!round_trips(&addr), "{addr}");
            for connection in [Scope::Global, Scope::Local, Scope::Loopback] {
                assert!(!keep_reported(&addr, connection), "{addr}");
            }
        }
        let fine = m("/ip4/1.2.3.4/tcp/1/tls/sni/example.org");
        assert!(round_trips(&fine) && keep_reported(&fine, Scope::Global));
    }

    #[test]
    fn what_a_connection_lets_a_peer_report() {
        let (lo, lan, net) = (
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.0.0.1/tcp/1",
            "/ip4/1.2.3.4/tcp/1",
        );
        let never = "/ip4/0.0.0.0/tcp/1";
        let over = |remote: &str| connection_scope(&m(remote));
        // over the internet: public addresses only
        let public = over("/ip4/8.8.8.8/tcp/50000");
        assert_eq!(public, Scope::Global);
        assert!(keep_reported(&m(net), public));
        assert!(!keep_reported(&m(lan), public));
        assert!(!keep_reported(&m(lo), public));
        // over the LAN: LAN and public, not this host's loopback
        let local = over("/ip4/192.168.0.7/tcp/50000");
        assert_eq!(local, Scope::Local);
        assert!(keep_reported(&m(net), local) && keep_reported(&m(lan), local));
        assert!(!keep_reported(&m(lo), local));
        // over loopback (a peer on this host): everything dialable
        let host = over("/ip6/::1/tcp/50000");
        assert_eq!(host, Scope::Loopback);
        assert!(keep_reported(&m(net), host) && keep_reported(&m(lan), host));
        assert!(keep_reported(&m(lo), host));
        // never worth dialing, whatever the connection
        assert!(!keep_reported(&m(never), host));
        // an undialable remote end counts as the strictest
        assert_eq!(over(never), Scope::Global);
    }
}
