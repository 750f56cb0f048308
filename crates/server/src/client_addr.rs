//! Who is at the other end: the TCP peer, or, when the peer is a trusted reverse proxy, the
//! client address that proxy reported.
//!
//! Behind a proxy every connection comes from the proxy, so without this every event's source
//! would be the proxy's address and the per-address sign-in throttle one counter for everyone.
//! The headers are believed only from a peer in `trusted_proxies`: anyone else could write them.
//! Each proxy appends the address it received the request from, so the chain is read from the
//! right, skipping trusted proxies: the first address that is not one is the client (whatever is
//! left of it was written by the client itself and proves nothing).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The networks whose connections may report the client's address. Written as a comma-separated
/// list of CIDR blocks or single addresses, e.g. `10.0.0.0/8, 192.0.2.7`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => part
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{part:?} is not an IP address or a CIDR block (e.g. 10.0.0.0/8)"))?,
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// From `"10.0.0.0/8,192.0.2.7"` (a flag or a variable) or `["10.0.0.0/8", "192.0.2.7"]` (TOML).
impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::One(s) => s,
            Raw::Many(v) => v.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which header the trusted proxies write the client's address in. Only the one the proxy
/// writes may be read: a proxy passes the other through as the client sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Traefik, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!("{s:?} is not x-forwarded-for or forwarded")),
        }
    }
}

/// How to find the client's address.
#[derive(Clone, Debug, Default)]
pub struct ClientAddrPolicy {
    pub trusted: TrustedProxies,
    pub header: ForwardedHeader,
}

/// Where a request came from, put in the request's extensions by the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client, as far as can be told.
    pub ip: IpAddr,
    /// The trusted proxy that reported `ip` (the TCP peer); `None` for a direct connection.
    pub via: Option<IpAddr>,
}

impl ClientAddrPolicy {
    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let peer = canonical(peer.ip());
        let direct = ClientAddr { ip: peer, via: None };
        if !self.trusted.contains(peer) {
            return direct;
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded(headers),
        };
        // From the right: skip the trusted proxies; the first other address is the client. An
        // entry that is not an address (`unknown`, an obfuscated name) ends the walk: the
        // nearest address known is then the last trusted one.
        let mut nearest = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(ip) if self.trusted.contains(*ip) => nearest = *ip,
                Some(ip) => return ClientAddr { ip: *ip, via: Some(peer) },
                None => break,
            }
        }
        if nearest == peer {
            direct
        } else {
            ClientAddr { ip: nearest, via: Some(peer) }
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, as a dual-stack socket reports it) is
/// the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every entry of every `X-Forwarded-For` line, in order; `None` for one that is not an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect()
}

/// The `for=` of every element of every `Forwarded` line, in order.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("for=?").split(','))
        .map(|element| {
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_owned())
            });
            node.and_then(|n| parse_node(&n))
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    node.strip_prefix('[').and_then(|n| n.strip_suffix(']')).and_then(|n| n.parse().ok()).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(trusted: &str, header: ForwardedHeader) -> ClientAddrPolicy {
        ClientAddrPolicy { trusted: trusted.parse().unwrap(), header }
    }

    fn headers(lines: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in lines {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 50_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_headers_of_an_untrusted_peer_are_ignored() {
        let p = policy("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(p.client(peer("203.0.113.5"), &h), ClientAddr { ip: ip("203.0.113.5"), via: None });
        let none = ClientAddrPolicy::default();
        assert_eq!(none.client(peer("10.0.0.1"), &h), ClientAddr { ip: ip("10.0.0.1"), via: None });
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = policy("10.0.0.0/8, 192.0.2.7", ForwardedHeader::XForwardedFor);
        // The client wrote the first entry itself; the proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.9"), ("x-forwarded-for", "192.0.2.7, 10.1.2.3")]);
        assert_eq!(p.client(peer("10.9.9.9"), &h), ClientAddr { ip: ip("198.51.100.9"), via: Some(ip("10.9.9.9")) });
        // Only trusted proxies in the chain: the farthest one.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(p.client(peer("10.9.9.9"), &h), ClientAddr { ip: ip("10.1.1.1"), via: Some(ip("10.9.9.9")) });
        // No header: the proxy itself.
        assert_eq!(p.client(peer("10.9.9.9"), &HeaderMap::new()), ClientAddr { ip: ip("10.9.9.9"), via: None });
        // Garbage stops the walk at the nearest known address.
        let h = headers(&[("x-forwarded-for", "198.51.100.9, nonsense, 10.2.2.2")]);
        assert_eq!(p.client(peer("10.9.9.9"), &h), ClientAddr { ip: ip("10.2.2.2"), via: Some(ip("10.9.9.9")) });
        // The other header is not read.
        let h = headers(&[("forwarded", "for=198.51.100.9")]);
        assert_eq!(p.client(peer("10.9.9.9"), &h).ip, ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_elements_with_ports_and_ipv6() {
        let p = policy("10.0.0.0/8,2001:db8:ffff::/48", ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::17]:4711";proto=https, for="[2001:db8:ffff::1]";by=x, for=10.0.0.2:80"#,
        )]);
        let got = p.client(peer("::ffff:10.0.0.1"), &h);
        assert_eq!(got, ClientAddr { ip: ip("2001:db8::17"), via: Some(ip("10.0.0.1")) });
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(p.client(peer("10.0.0.1"), &h).ip, ip("10.0.0.1"));
    }

    #[test]
    fn the_setting_parses_and_prints() {
        let t: TrustedProxies = " 10.1.2.3/8 ,192.0.2.7,::1".parse().unwrap();
        assert_eq!(t.to_string(), "10.0.0.0/8,192.0.2.7/32,::1/128");
        assert!(t.contains(ip("10.200.0.1")) && t.contains(ip("::ffff:192.0.2.7")) && !t.contains(ip("192.0.2.8")));
        let e = "10.0.0.0/8,proxy.local".parse::<TrustedProxies>().unwrap_err();
        assert!(e.contains("\"proxy.local\" is not an IP address"), "{e}");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
