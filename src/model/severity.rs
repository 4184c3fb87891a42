//! Floor L0 (`model`). How bad a violation or a detection is, lowest first.

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// All severities, lowest first (`ALL[s as usize] == s`).
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A severity name (`"info"` .. `"critical"`), checked at load.
pub fn de_severity<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    match Severity::parse(&s) {
        Some(_) => Ok(s),
        None => Err(serde::de::Error::custom(format!(
            "severity {s:?} is not one of info, low, medium, high, critical"
        ))),
    }
}

/// `serialize_with` helper: a severity written as its name (`"high"`).
pub fn ser_severity<S: Serializer>(sev: &Severity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sev.as_str())
}
