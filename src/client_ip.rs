//! The client IP a sign-in records in the session row, as Better Auth 1.7's `getIP` resolves
//! it (`advanced.ipAddress`: `ipAddressHeaders`, `trustedProxies`, `ipv6Subnet`,
//! `disableIpTracking`).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use crate::error::ConfigError;

/// How the client IP is read from a request.
#[derive(Clone, Debug)]
pub(crate) struct IpTracking {
    /// Headers read in order, first answer wins.
    headers: Vec<HeaderName>,
    /// Proxies whose hops are stripped from the right of a forwarded list.
    trusted_proxies: Vec<Cidr>,
    /// IPv6 addresses are recorded as this prefix (Better Auth's default: 64).
    ipv6_subnet: u8,
    /// Record no IP at all.
    disabled: bool,
}

/// An address range: the network and its prefix length, IPv4-mapped IPv6 taken as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network = unmapped(address.parse().ok()?);
        let most = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => p.parse().ok()?,
            Some(_) => return None,
            None => most,
        };
        (prefix <= most).then_some(Self { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, unmapped(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => leading_equal(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => leading_equal(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn leading_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (bytes, rest) = (usize::from(bits / 8), bits % 8);
    a[..bytes] == b[..bytes]
        && (rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            a[bytes] & mask == b[bytes] & mask
        })
}

/// An IPv4-mapped IPv6 address as IPv4.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl IpTracking {
    pub(crate) fn new(
        headers: Option<Vec<String>>,
        trusted_proxies: &[String],
        ipv6_subnet: Option<u8>,
        disabled: bool,
    ) -> Result<Self, ConfigError> {
        let headers = headers
            .unwrap_or_else(|| vec!["x-forwarded-for".to_owned()])
            .into_iter()
            .map(|h| {
                HeaderName::try_from(h.as_str()).map_err(|_| ConfigError::Invalid {
                    option: "ip_address_headers",
                    reason: format!("{h:?} is not a valid header name"),
                })
            })
            .collect::<Result<_, _>>()?;
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|p| {
                Cidr::parse(p).ok_or_else(|| ConfigError::Invalid {
                    option: "trusted_proxies",
                    reason: format!(
                        "{p:?} is neither an IP address nor a range like 10.0.0.0/8 or fd00::/8"
                    ),
                })
            })
            .collect::<Result<_, _>>()?;
        let ipv6_subnet = ipv6_subnet.unwrap_or(64);
        if ipv6_subnet > 128 {
            return Err(ConfigError::Invalid {
                option: "ipv6_subnet",
                reason: format!("{ipv6_subnet} is more bits than an IPv6 address has (128)"),
            });
        }
        Ok(Self {
            headers,
            trusted_proxies,
            ipv6_subnet,
            disabled,
        })
    }

    /// The client IP of a request with `headers`, or `None` (tracking off, no header, or no
    /// address that can be trusted).
    pub(crate) fn client_ip(&self, headers: &HeaderMap) -> Option<String> {
        if self.disabled {
            return None;
        }
        self.headers.iter().find_map(|name| {
            // Every line of the header, as one list (the Fetch API's `Headers.get`, which Better
            // Auth reads): a proxy that adds a line of its own (HAProxy's `option forwardfor`)
            // must not leave the client's line looking like the whole chain.
            // Bytes beyond ASCII read as Latin-1, as Node reads header values: such a hop is
            // not an address, and ends the search only when it is reached from the right (a
            // client must not be able to keep its address out of the row with one byte).
            let mut lines = headers.get_all(name).iter();
            let first = lines.next()?;
            let mut joined = match first.to_str() {
                Ok(ascii) => std::borrow::Cow::Borrowed(ascii),
                Err(_) => std::borrow::Cow::Owned(latin1(first.as_bytes())),
            };
            for line in lines {
                let joined = joined.to_mut();
                joined.push_str(", ");
                joined.push_str(&latin1(line.as_bytes()));
            }
            self.read_header(&joined)
        })
    }

    /// One forwarded header's client: with trusted proxies, the rightmost hop that is not one
    /// of them (a hop that is not an address ends the search); without, only a header holding
    /// exactly one address (the leftmost of several is whatever the client chose to send).
    fn read_header(&self, value: &str) -> Option<String> {
        let hops: Vec<&str> = value
            .split(',')
            .map(js_trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = if self.trusted_proxies.is_empty() {
            match hops.as_slice() {
                [only] => only.parse::<IpAddr>().ok()?,
                _ => return None,
            }
        } else {
            let mut found = None;
            for hop in hops.iter().rev() {
                let ip = hop.parse::<IpAddr>().ok()?;
                if !self.trusted_proxies.iter().any(|p| p.contains(ip)) {
                    found = Some(ip);
                    break;
                }
            }
            found?
        };
        Some(self.written(client))
    }

    /// As Better Auth writes an address: IPv4 (and IPv4-mapped IPv6) as is, other IPv6
    /// addresses masked to the subnet and written out in full, lower case.
    fn written(&self, ip: IpAddr) -> String {
        match unmapped(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let mut bits = u32::from(self.ipv6_subnet);
                v6.segments()
                    .iter()
                    .map(|&group| {
                        let kept = bits.min(16);
                        bits -= kept;
                        let mask = if kept == 0 {
                            0
                        } else {
                            u16::MAX << (16 - kept)
                        };
                        format!("{:04x}", group & mask)
                    })
                    .collect::<Vec<_>>()
                    .join(":")
            }
        }
    }
}

/// `s` without the whitespace JavaScript's `trim` removes, of the characters Latin-1 has: not
/// U+0085, which Rust's `trim` also removes.
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}'))
}

/// `bytes` read as Latin-1 (each byte one character), as Node decodes header values.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn tracking(proxies: &[&str], subnet: Option<u8>) -> IpTracking {
        let proxies: Vec<String> = proxies.iter().map(|s| (*s).to_owned()).collect();
        IpTracking::new(None, &proxies, subnet, false).unwrap()
    }

    fn ip(t: &IpTracking, forwarded: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        t.client_ip(&headers)
    }

    #[test]
    fn without_trusted_proxies_only_a_single_address_counts() {
        let t = tracking(&[], None);
        assert_eq!(ip(&t, " 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip(&t, "203.0.113.7, 10.0.0.1"), None);
        assert_eq!(ip(&t, "::ffff:192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(
            ip(&t, "2001:DB8::1").as_deref(),
            Some("2001:0db8:0000:0000:0000:0000:0000:0000")
        );
        assert_eq!(ip(&t, "not-an-ip"), None);
    }

    /// Better Auth's `trustedProxies`: hops are stripped from the right while they are
    /// trusted; the first that is not is the client.
    #[test]
    fn trusted_proxies_are_stripped_from_the_right() {
        let t = tracking(&["10.0.0.0/8", "fd00::/8", "192.0.2.9"], None);
        assert_eq!(
            ip(&t, "198.51.100.4, 10.1.2.3").as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(
            ip(&t, "spoofed, 198.51.100.4, 10.1.2.3, 192.0.2.9").as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(ip(&t, "10.1.2.3, 10.9.9.9"), None, "every hop a proxy");
        assert_eq!(ip(&t, "198.51.100.4, garbage, 10.1.2.3"), None);
        assert_eq!(
            ip(&t, "::ffff:10.0.0.1").as_deref(),
            None,
            "mapped, trusted"
        );
        assert_eq!(
            ip(&t, "203.0.113.1, fd12::1").as_deref(),
            Some("203.0.113.1")
        );
    }

    /// A proxy that adds a line of its own: the lines are one list, as Better Auth reads them.
    #[test]
    fn every_line_of_the_header_counts() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.4".parse().unwrap());
        assert_eq!(tracking(&[], None).client_ip(&headers), None);
        let behind = tracking(&["10.0.0.0/8"], None);
        assert_eq!(behind.client_ip(&headers).as_deref(), Some("198.51.100.4"));
    }

    /// A byte beyond ASCII in a hop the client wrote (to the left of the proxies' own) reads
    /// as Latin-1, as Node reads it: that hop is not an address, and the client is still found
    /// from the right rather than the whole header being thrown away (and with it the client's
    /// address, or, with a second header configured, the header the client chose read instead).
    #[test]
    fn bytes_beyond_ascii_spoil_only_their_own_hop() {
        let t = IpTracking::new(
            Some(vec!["x-forwarded-for".to_owned(), "x-real-ip".to_owned()]),
            &["10.0.0.0/8".to_owned()],
            None,
            false,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 198.51.100.4, 10.0.0.1").unwrap(),
        );
        headers.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        assert_eq!(t.client_ip(&headers).as_deref(), Some("198.51.100.4"));
        // On a later line too.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"caf\xe9, 198.51.100.4").unwrap(),
        );
        assert_eq!(t.client_ip(&headers).as_deref(), Some("198.51.100.4"));
        // U+0085 (byte 0x85) is not whitespace to JavaScript's `trim`: that hop is no address.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.4\x85, 10.0.0.1").unwrap(),
        );
        assert_eq!(t.client_ip(&headers), None);
        // Reached from the right, it ends the search, as in Better Auth.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.4, \xff, 10.0.0.1").unwrap(),
        );
        assert_eq!(t.client_ip(&headers), None);
    }

    #[test]
    fn the_ipv6_subnet_is_a_setting() {
        let full = tracking(&[], Some(128));
        assert_eq!(
            ip(&full, "2001:db8::1").as_deref(),
            Some("2001:0db8:0000:0000:0000:0000:0000:0001")
        );
        let odd = tracking(&[], Some(52));
        assert_eq!(
            ip(&odd, "2001:db8:abcd:ef12::1").as_deref(),
            Some("2001:0db8:abcd:e000:0000:0000:0000:0000")
        );
    }

    #[test]
    fn bad_settings_are_config_errors() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "nope",
            "10.0.0.0/x",
        ] {
            assert!(
                IpTracking::new(None, &[bad.to_owned()], None, false).is_err(),
                "{bad}"
            );
        }
        assert!(IpTracking::new(None, &[], Some(129), false).is_err());
        let off = IpTracking::new(None, &[], None, true).unwrap();
        assert_eq!(ip(&off, "203.0.113.7"), None);
    }
}
