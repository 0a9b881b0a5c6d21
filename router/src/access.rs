//! Blocking client networks: deny lists of CIDR blocks, one for the whole
//! router (`--deny`) and one per app (`labels.BATON_DENY`, comma
//! separated). A denied client gets 403 and is counted.
//!
//! The client is the TCP peer. `X-Forwarded-For` is not consulted: any
//! client can write it, so trusting it would let a blocked network unblock
//! itself. IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`) are matched as IPv4.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network, e.g. `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A deny-list entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {text:?}: {reason}")]
pub struct CidrError {
    /// The entry as written.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let error = |reason| CidrError {
            text: text.to_string(),
            reason,
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| error("not an IPv4 or IPv6 address"))?;
        let width = max_prefix(network);
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| error("prefix length out of range"))?,
        };
        // Host bits are cleared, so `10.1.2.3/8` means `10.0.0.0/8`.
        Ok(Cidr {
            network: masked(network, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; everything else as is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

/// A list of denied networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList(Vec<Cidr>);

impl DenyList {
    /// Parses a comma-separated list; empty entries are skipped. Every
    /// entry that does not parse is returned as an error, and the others
    /// still apply (a typo must not lift the whole list).
    pub fn parse(list: &str) -> (DenyList, Vec<CidrError>) {
        let mut networks = Vec::new();
        let mut errors = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.parse() {
                Ok(cidr) => networks.push(cidr),
                Err(e) => errors.push(e),
            }
        }
        (DenyList(networks), errors)
    }

    /// Whether `ip` is denied.
    pub fn denies(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, as written back (`10.0.0.0/8`).
    pub fn networks(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        // The same address written as IPv4-mapped IPv6.
        assert!(net.contains(ip("::ffff:10.0.0.9")));
        let one: Cidr = "127.0.0.5".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.5/32");
        assert!(one.contains(ip("127.0.0.5")));
        assert!(!one.contains(ip("127.0.0.6")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn bad_entries_are_named_and_the_rest_still_apply() {
        let (list, errors) = DenyList::parse(" 192.168.0.0/16, nonsense ,10.0.0.0/33,, ::1 ");
        assert_eq!(list.networks(), vec!["192.168.0.0/16", "::1/128"]);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].to_string(),
            "invalid network \"nonsense\": not an IPv4 or IPv6 address"
        );
        assert_eq!(errors[1].reason, "prefix length out of range");
        assert!(list.denies(ip("192.168.3.4")));
        assert!(list.denies(ip("::1")));
        assert!(!list.denies(ip("10.0.0.1")));
        assert!(DenyList::parse("").0.is_empty());
    }
}
