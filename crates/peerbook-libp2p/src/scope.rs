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
    /// The local network: private (RFC 1918, shared 100.64/10, IPv6 ULA) and
    /// link-local addresses, `.local` names.
    Local,
    /// Anything else (a DNS name is taken at its word).
    Global,
}

/// The reach of `addr` (by its first component); `None` for an address never
/// worth dialing (unspecified, multicast, broadcast, reserved, empty).
pub(crate) fn scope(addr: &Multiaddr) -> Option<Scope> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => ip4_scope(ip),
        Protocol::Ip6(ip) => ip6_scope(ip),
        Protocol::Dns(name)
        | Protocol::Dns4(name)
        | Protocol::Dns6(name)
        | Protocol::Dnsaddr(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            Some(if name == "localhost" || name.ends_with(".localhost") {
                Scope::Loopback
            } else if name.ends_with(".local") {
                Scope::Local
            } else {
                Scope::Global
            })
        }
        Protocol::Unix(_) | Protocol::Memory(_) => Some(Scope::Loopback),
        _ => Some(Scope::Global),
    }
}

fn ip4_scope(ip: Ipv4Addr) -> Option<Scope> {
    let [a, b, ..] = ip.octets();
    if a == 0 || ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        None // "this network", multicast, broadcast, reserved
    } else if ip.is_loopback() {
        Some(Scope::Loopback)
    } else if ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b)) {
        Some(Scope::Local)
    } else {
        Some(Scope::Global)
    }
}

fn ip6_scope(ip: Ipv6Addr) -> Option<Scope> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ip4_scope(v4);
    }
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_multicast() {
        None
    } else if ip.is_loopback() {
        Some(Scope::Loopback)
    } else if first & 0xffc0 == 0xfe80 || first & 0xfe00 == 0xfc00 {
        Some(Scope::Local) // link-local, unique local
    } else {
        Some(Scope::Global)
    }
}

/// The reach of a connection whose remote end is `remote` (an address never
/// worth dialing counts as global: the strictest).
pub(crate) fn connection_scope(remote: &Multiaddr) -> Scope {
    scope(remote).unwrap_or(Scope::Global)
}

/// Keep `addr`, reported by a peer over a connection of reach `connection`? A
/// global address always; a local one only over a local or loopback connection; a
/// loopback one only over a loopback connection; one never worth dialing never.
pub(crate) fn keep_reported(addr: &Multiaddr, connection: Scope) -> bool {
    scope(addr).is_some_and(|reach| connection <= reach)
}

#[cfg(test)]
mod tests {
    use super::{connection_scope, keep_reported, scope, Scope};
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
