//! `allowed_outbound_hosts`: which URLs a plugin may request, and which
//! addresses a name may lead to.
//!
//! An entry is `scheme://host[:port]`: `scheme` is `http` or `https`, `host`
//! a name (`api.example.com`), a wildcard for its subdomains
//! (`*.example.com`, which does not match `example.com` itself) or an IP
//! literal (`127.0.0.1`, `[::1]`); the port defaults to the scheme's (80,
//! 443). Nothing else may follow the authority.
//!
//! Addresses that are not public (loopback, private, link-local, unique
//! local, carrier-grade NAT, unspecified, multicast, broadcast) are reached
//! only when the entry names that very address as an IP literal: listing
//! `http://localhost:8080` lets a tool ask for `localhost`, but the
//! connection goes through only if `http://127.0.0.1:8080` is listed too.
//! The rule applies to what the resolver answers, not only to the name, so a
//! public-looking name that resolves to a private address is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The manifest key this module checks, named in every refusal.
pub(crate) const KEY: &str = "capabilities.allowed_outbound_hosts";

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The port a URL of this scheme uses when it names none.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Https => "https",
        })
    }
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lowercase, without a trailing dot).
    Name(String),
    /// Any name ending in `.` + this suffix.
    Subdomains(String),
    /// This address, and only it.
    Ip(IpAddr),
}

/// One parsed entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRule {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

/// The host a request names: a name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses the host of a URL authority (IPv6 in brackets).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return v6.parse().ok().map(Host::Ip);
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(Host::Ip(IpAddr::V4(ip)));
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            && !name.split('.').any(str::is_empty);
        valid.then_some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl HostRule {
    /// Parses one entry, or says what is wrong with it.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}` is not `scheme://host[:port]`"))?;
        let scheme = Scheme::parse(scheme)
            .ok_or_else(|| format!("`{entry}`: the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{entry}`: list only scheme, host and port (no path, query or user)"
            ));
        }
        let (host_text, port) = split_port(rest)
            .ok_or_else(|| format!("`{entry}`: the port is not a number from 1 to 65535"))?;
        let port = port.unwrap_or(scheme.default_port());
        let host = if let Some(suffix) = host_text.strip_prefix("*.") {
            match Host::parse(suffix) {
                Some(Host::Name(name)) if name.contains('.') => HostPattern::Subdomains(name),
                _ => {
                    return Err(format!(
                        "`{entry}`: a wildcard covers the subdomains of a name with at least \
                         two labels, such as `*.example.com`"
                    ));
                }
            }
        } else {
            match Host::parse(host_text) {
                Some(Host::Name(name)) => HostPattern::Name(name),
                Some(Host::Ip(ip)) => HostPattern::Ip(ip),
                None => return Err(format!("`{entry}`: `{host_text}` is not a host name")),
            }
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        if self.scheme != scheme || self.port != port {
            return false;
        }
        match (&self.host, host) {
            (HostPattern::Name(rule), Host::Name(name)) => rule == name,
            (HostPattern::Subdomains(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Ip(rule), Host::Ip(ip)) => rule == ip,
            _ => false,
        }
    }

    /// Whether this entry names `addr` itself as an IP literal.
    fn names_address(&self, scheme: Scheme, addr: SocketAddr) -> bool {
        self.scheme == scheme
            && self.port == addr.port()
            && matches!(self.host, HostPattern::Ip(ip) if canonical(ip) == canonical(addr.ip()))
    }
}

/// Splits `host[:port]`; `None` when a port is there but not valid.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find("]:") {
            Some(end) => (authority.get(..=end)?, authority.get(end + 2..)),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => None,
            Ok(port) => Some((host, Some(port))),
        },
    }
}

/// A plugin's parsed allow-list.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList {
    rules: Vec<HostRule>,
}

/// What a request asked for: the parts of its URL that the list checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) host: Host,
    pub(crate) port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Target {
    /// The target of a URI with scheme and authority.
    pub(crate) fn of(uri: &http::Uri) -> Option<Self> {
        let scheme = Scheme::parse(uri.scheme_str()?)?;
        let authority = uri.authority()?;
        let host = Host::parse(authority.host())?;
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        Some(Self { scheme, host, port })
    }
}

impl AllowList {
    /// Parses every entry; the error names the entry's index and problem.
    pub(crate) fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let rules = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| HostRule::parse(entry).map_err(|why| (index, why)))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether some entry covers the request's scheme, host and port.
    pub(crate) fn allows(&self, target: &Target) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.matches(target.scheme, &target.host, target.port))
    }

    /// Whether a connection to `addr` (an IP literal of the URL, or a
    /// resolver's answer) may be made: any public address of an allowed
    /// target, a non-public one only when an entry names it.
    pub(crate) fn may_connect(&self, scheme: Scheme, addr: SocketAddr) -> bool {
        is_public(addr.ip())
            || self
                .rules
                .iter()
                .any(|rule| rule.names_address(scheme, addr))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a public unicast address; every range a server's own
/// network could hide behind is not.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        AllowList::parse(&entries).unwrap()
    }

    fn target(url: &str) -> Target {
        Target::of(&url.parse().unwrap()).unwrap()
    }

    #[test]
    fn entries_name_scheme_host_and_port() {
        let l = list(&["https://api.example.com", "http://localhost:8080"]);
        assert!(l.allows(&target("https://api.example.com/v1")));
        assert!(l.allows(&target("https://API.example.com:443/")));
        assert!(!l.allows(&target("http://api.example.com/")));
        assert!(!l.allows(&target("https://api.example.com:8443/")));
        assert!(!l.allows(&target("https://evil.com/")));
        assert!(l.allows(&target("http://localhost:8080/")));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let l = list(&["https://*.example.com"]);
        assert!(l.allows(&target("https://a.example.com/")));
        assert!(l.allows(&target("https://a.b.example.com/")));
        assert!(!l.allows(&target("https://example.com/")));
        assert!(!l.allows(&target("https://badexample.com/")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com:0",
            "https://example.com:x",
            "https://*.com",
            "https://u@example.com",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
        assert!(HostRule::parse("http://[::1]:8080").is_ok());
    }

    #[test]
    fn private_addresses_need_a_literal_entry() {
        let by_name = list(&["http://localhost:8080"]);
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(!by_name.may_connect(Scheme::Http, loopback));
        let literal = list(&["http://localhost:8080", "http://127.0.0.1:8080"]);
        assert!(literal.may_connect(Scheme::Http, loopback));
        assert!(!literal.may_connect(Scheme::Https, loopback));
        assert!(!literal.may_connect(Scheme::Http, "127.0.0.1:9".parse().unwrap()));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:8080".parse().unwrap();
        assert!(literal.may_connect(Scheme::Http, mapped));
        assert!(by_name.may_connect(Scheme::Http, "93.184.216.34:80".parse().unwrap()));
    }

    #[test]
    fn non_public_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
