//! The testbed's IPv4 subnet: the bridge address and the DHCP range inside it.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::error::NetError;

/// The default testbed subnet (RFC 2544 benchmarking range: never routed on the Internet).
pub const DEFAULT_SUBNET: &str = "198.18.0.0/24";

/// An IPv4 network in CIDR form, with host bits zero and a prefix from /8 to /28.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn host(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + offset)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The bridge's (host side) address: the first host, `.1`.
    pub fn bridge_address(&self) -> Ipv4Addr {
        self.host(1)
    }

    /// The first and last address dnsmasq hands out: from `.10` (or `.2` in small subnets)
    /// up to the address before the broadcast address.
    pub fn dhcp_range(&self) -> (Ipv4Addr, Ipv4Addr) {
        let first = if self.size() >= 64 { 10 } else { 2 };
        (self.host(first), self.host(self.size() - 2))
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Self, NetError> {
        let bad = |why: &str| NetError::BadSubnet {
            subnet: text.to_string(),
            why: why.to_string(),
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix is not a number"))?;
        if !(8..=28).contains(&prefix) {
            return Err(bad("the prefix must be from 8 to 28"));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(network) & !mask != 0 {
            let net = Ipv4Addr::from(u32::from(network) & mask);
            return Err(bad(&format!(
                "host bits are set (did you mean {net}/{prefix}?)"
            )));
        }
        if network.is_loopback() || network.is_multicast() || network.is_unspecified() {
            return Err(bad(
                "loopback, multicast and 0.0.0.0 networks cannot be used",
            ));
        }
        Ok(Subnet { network, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subnet_layout() {
        let s: Subnet = DEFAULT_SUBNET.parse().unwrap();
        assert_eq!(s.bridge_address(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(
            s.dhcp_range(),
            (
                Ipv4Addr::new(198, 18, 0, 10),
                Ipv4Addr::new(198, 18, 0, 254)
            )
        );
        let small: Subnet = "10.1.2.16/28".parse().unwrap();
        assert_eq!(
            small.dhcp_range(),
            (Ipv4Addr::new(10, 1, 2, 18), Ipv4Addr::new(10, 1, 2, 30))
        );
    }

    #[test]
    fn bad_subnets_say_why() {
        for (text, why) in [
            ("198.18.0.0", "no /prefix"),
            ("198.18.0.1/24", "host bits"),
            ("198.18.0.0/30", "from 8 to 28"),
            ("fe80::/64", "not an IPv4"),
            ("127.0.0.0/8", "loopback"),
        ] {
            let err = text.parse::<Subnet>().unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("bad subnet"),
                "{text}: {err}"
            );
        }
    }
}
