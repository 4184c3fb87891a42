//! Floor L3. The site's host inventory file format for the hosts detector:
//! [`Inventory`] (a CSV of `ip,mac,name` lines, read and checked when the
//! rules file is loaded, with every bad line in [`InventoryError`]) and the
//! [`Mac`] address type with its text form and serde. Leaves alone: what the
//! detector does with them (the parent module).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

/// An Ethernet MAC address, written `02:00:00:00:00:01` (or with `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let bad = || format!("bad MAC address {s:?} (want six hex pairs like 02:00:00:00:00:01)");
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the inventory knows of one address.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Known {
    /// A line gave this address without a MAC: any MAC is fine.
    pub(super) any_mac: bool,
    pub(super) macs: BTreeSet<Mac>,
}

/// The site's host inventory: a CSV file of `ip,mac,name` lines (MAC and name
/// optional; blank lines, `#` comments and an `ip,...` header skipped). An
/// address may have several lines (several NICs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// As written in the rules file (the path, relative to the working directory).
    pub(super) path: String,
    pub(super) hosts: BTreeMap<IpAddr, Known>,
    /// Every MAC the inventory lists (an inventoried machine's rotating IPv6
    /// addresses are known by their MAC).
    pub(super) macs: BTreeSet<Mac>,
}

/// Why an inventory cannot be used. Every bad line is listed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("inventory {path}: {} bad line(s): {}", .lines.len(), fmt_lines(.path, .lines))]
    Invalid {
        path: String,
        /// (1-based line, problem).
        lines: Vec<(usize, String)>,
    },
}

fn fmt_lines(path: &str, lines: &[(usize, String)]) -> String {
    lines
        .iter()
        .map(|(n, m)| format!("{path}:{n}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Inventory {
    /// Read and check an inventory file.
    pub fn load(path: &str) -> Result<Inventory, InventoryError> {
        let text =
            std::fs::read_to_string(Path::new(path)).map_err(|source| InventoryError::Io {
                path: path.to_string(),
                source,
            })?;
        Inventory::parse(path, &text)
    }

    /// Check inventory text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory {
            path: path.to_string(),
            ..Inventory::default()
        };
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.splitn(3, ',').map(str::trim);
            let ip = f.next().unwrap_or_default();
            let mac = f.next().unwrap_or_default();
            if n == 1 && ip.eq_ignore_ascii_case("ip") {
                continue;
            }
            let ip = match ip.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    bad.push((n, format!("bad IP address {ip:?}")));
                    continue;
                }
            };
            let k = inv.hosts.entry(ip).or_default();
            if mac.is_empty() {
                k.any_mac = true;
                continue;
            }
            match mac.parse::<Mac>() {
                Ok(m) => {
                    k.macs.insert(m);
                    inv.macs.insert(m);
                }
                Err(e) => bad.push((n, e)),
            }
        }
        if bad.is_empty() {
            Ok(inv)
        } else {
            Err(InventoryError::Invalid {
                path: path.to_string(),
                lines: bad,
            })
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Addresses listed.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

impl Serialize for Inventory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.path)
    }
}

/// The rules file gives a path; it is read and checked right away, so a bad
/// inventory is an error of the rules file (at the `inventory` key).
impl<'de> Deserialize<'de> for Inventory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Inventory, D::Error> {
        let path = String::deserialize(d)?;
        Inventory::load(&path).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{M1, MR};
    use super::super::HostsConfig;
    use super::*;

    #[test]
    fn inventory_errors_name_every_bad_line() {
        let e = Inventory::parse(
            "inv.csv",
            "ip,mac,name\n192.0.2.1,,a\n192.0.2.999,,b\n\n192.0.2.3,02:00:00:00:0b,c\n",
        )
        .expect_err("bad inventory");
        let m = e.to_string();
        assert!(m.contains("2 bad line(s)"), "{m}");
        assert!(
            m.contains("inv.csv:3: bad IP address \"192.0.2.999\""),
            "{m}"
        );
        assert!(m.contains("inv.csv:5: bad MAC address"), "{m}");
        // In a rules file: an error at the inventory key.
        let dir = tempfile::tempdir().expect("tempdir");
        let inv = dir.path().join("inv.csv");
        std::fs::write(&inv, "192.0.2.1,zz:00:00:00:00:01,a\n").expect("write");
        let rules = format!(
            "[[zone]]\nid = \"a\"\ncidrs = [\"192.0.2.0/24\"]\n\n[detect.hosts]\ninventory = {:?}\n",
            inv.display().to_string()
        );
        match crate::detect::config_of("r.toml", &rules) {
            Ok(_) => panic!("bad inventory accepted"),
            Err(e) => {
                let m = format!("{e:?}");
                assert!(m.contains("inv.csv:1: bad MAC address"), "{m}");
                assert!(m.contains("line: 6"), "{m}");
            }
        }
        std::fs::write(&inv, "192.0.2.1,02:00:00:00:00:01,a\n").expect("write");
        match crate::detect::config_of("r.toml", &rules) {
            Ok(c) => assert_eq!(c.hosts.inventory.map(|i| i.len()), Some(1)),
            Err(e) => panic!("good inventory refused: {e:?}"),
        }
    }

    #[test]
    fn mac_text_round_trips_and_rejects_junk() {
        let m: Mac = "02-00-00-00-0B-01".parse().expect("mac");
        assert_eq!((m.0, m.to_string().as_str()), (M1, "02:00:00:00:0b:01"));
        for bad in [
            "",
            "02:00:00:00:0b",
            "02:00:00:00:0b:01:02",
            "2:0:0:0:b:1",
            "zz:00:00:00:00:00",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
        }
        let c: HostsConfig =
            toml::from_str("routers = [\"02:00:00:00:0b:fe\"]\nmax_addresses_per_mac = 6\n")
                .expect("config");
        assert_eq!((c.routers, c.max_addresses_per_mac), (vec![Mac(MR)], 6));
        assert!(toml::from_str::<HostsConfig>("routers = [\"nope\"]").is_err());
    }
}
