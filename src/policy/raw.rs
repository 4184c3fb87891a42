//! Floor L1 (`policy`). The rules file as written (serde, unknown keys rejected). Values that the
//! loader re-validates keep their byte span (`toml::Spanned`) so that every error
//! can name `FILE:LINE:COL`. Nothing here is trusted: `load` turns it into the
//! validated types of `policy`.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// One rules file: a site file or an embedded preset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub preset: Option<Spanned<String>>,
    pub default_zone: Option<Spanned<String>>,
    pub site: Option<RawSite>,
    #[serde(default)]
    pub zone: Vec<RawZone>,
    #[serde(default)]
    pub hostgroup: Vec<RawHostGroup>,
    #[serde(default)]
    pub allow: Vec<RawAllow>,
    pub severity: Option<BTreeMap<String, Spanned<String>>>,
    /// Opt-in rule sets a preset declares (`[[option]]`) ...
    #[serde(default)]
    pub option: Vec<RawOption>,
    /// ... and the ones this site turns on (`options = ["..."]`).
    pub options: Option<Vec<Spanned<String>>>,
    /// Detector thresholds (`[detect.*]`): read by the detectors' floor
    /// (`crate::detect::config_of`), accepted and ignored here.
    pub detect: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Option<String>,
    pub guideline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub id: Spanned<String>,
    pub name_ja: Option<String>,
    pub name_en: Option<String>,
    pub cidrs: Option<Vec<Spanned<String>>>,
    pub vlans: Option<Vec<Spanned<i64>>>,
    pub external: Option<bool>,
    pub intra_zone_allowed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostGroup {
    pub id: Spanned<String>,
    pub description: Option<String>,
    pub zone: Option<Spanned<String>>,
    pub cidrs: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    pub id: Spanned<String>,
    /// Required, except in a site rule with `override = true`, which takes every
    /// key it does not give from the preset rule it replaces.
    pub from: Option<Spanned<Vec<Spanned<String>>>>,
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub proto: Option<Spanned<String>>,
    /// `["site"]` in a preset: the site must give the ports (the rule is off until it does).
    pub ports: Option<Vec<Spanned<RawPort>>>,
    pub description: Option<String>,
    /// A note (string) or a source table (`basis`, `document`, `quote`, ...),
    /// checked by the loader.
    pub guideline: Option<Spanned<toml::Value>>,
    /// The `[[option]]` this rule belongs to: off unless the site lists it in `options`.
    pub option: Option<Spanned<String>>,
    #[serde(default, rename = "override")]
    pub override_preset: bool,
}

/// An opt-in rule set of a preset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    pub id: Spanned<String>,
    pub description: Option<String>,
}

/// `443` or `"8000-8080"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPort {
    Num(i64),
    Range(String),
}
