//! Floor L0 (`model`). Addresses in a rules file, with one strictness everywhere: a bare address
//! is a /32 or /128, a CIDR must have its host bits zero (`192.0.2.1/24` is an
//! error that suggests `192.0.2.0/24`), for zones, host groups, allow rules
//! and detector tables alike.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Parse a CIDR or a bare address.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    let n: IpNet = s
        .parse()
        .map_err(|_| format!("invalid CIDR or address {s:?}"))?;
    if n.trunc() != n {
        return Err(format!(
            "CIDR {s:?} has host bits set (did you mean {}?)",
            n.trunc()
        ));
    }
    Ok(n)
}

/// A CIDR or a single address (`"192.0.2.224/28"`, `"192.0.2.5"`) in a
/// detector table, checked by [`parse_cidr`] when the rules file is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Cidr, String> {
        parse_cidr(&s).map(Cidr)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strictness_for_zones_and_detector_tables() {
        assert_eq!(
            parse_cidr("192.0.2.5").map(|n| n.to_string()),
            Ok("192.0.2.5/32".into())
        );
        assert_eq!(parse_cidr("2001:db8::/32").map(|n| n.prefix_len()), Ok(32));
        let e = parse_cidr("192.0.2.1/24").unwrap_err();
        assert!(e.contains("did you mean 192.0.2.0/24"), "{e}");
        assert!(parse_cidr("300.1.1.0/24").is_err());
        // The detector tables refuse host bits too (they used to drop them silently).
        assert!(Cidr::try_from("192.0.2.230/28".to_string()).is_err());
        assert_eq!(
            Cidr::try_from("192.0.2.224/28".to_string()).map(String::from),
            Ok("192.0.2.224/28".into())
        );
    }
}
