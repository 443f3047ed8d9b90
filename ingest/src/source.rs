//! The client's address: the TCP peer, or, when the peer is a trusted proxy, the address that
//! proxy reports in `X-Forwarded-For`.

use std::net::IpAddr;
use std::str::FromStr;

/// An address block (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A malformed address block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an address or address/prefix: {0:?}")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let error = || CidrError(s.into());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| error())?)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| error())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(error());
        }
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    /// True if `addr` is in the block.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client address of a request from `peer` carrying `forwarded_for` (the raw
/// `X-Forwarded-For` values, in order). Proxies append the address they saw, so the list is
/// read from the right, skipping trusted proxies; the first untrusted address is the client.
/// A peer that is not a trusted proxy is the client, whatever header it sends.
pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |addr: IpAddr| trusted.iter().any(|cidr| cidr.contains(addr));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                client = addr.to_canonical();
                if !is_trusted(client) {
                    break;
                }
            }
            // A hop we cannot read ends what we can believe: the last trusted address stands.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid")
    }

    #[test]
    fn cidr_parse_and_contains() {
        let net: Cidr = "10.0.0.0/8".parse().expect("valid");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one: Cidr = "2001:db8::1".parse().expect("valid");
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
        let all: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["", "10.0.0.0/33", "x/8", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec![
            "127.0.0.1".parse().expect("valid"),
            "10.0.0.0/8".parse().expect("valid"),
        ];
        let xff = ["198.51.100.7, 10.0.0.2"];
        assert_eq!(
            client_addr(ip("127.0.0.1"), xff.into_iter(), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("203.0.113.1"), xff.into_iter(), &trusted),
            ip("203.0.113.1")
        );
        // A client cannot smuggle an address in front of the one the proxy appended.
        let spoofed = ["1.2.3.4, 198.51.100.7"];
        assert_eq!(
            client_addr(ip("127.0.0.1"), spoofed.into_iter(), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), ["garbage"].into_iter(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(
                ip("127.0.0.1"),
                ["10.0.0.3", "198.51.100.8"].into_iter(),
                &trusted
            ),
            ip("198.51.100.8")
        );
    }
}
