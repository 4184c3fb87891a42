//! Floor L1 (`policy`). Loader: parse (toml + serde) → merge preset and site → validate →
//! [`Policy`].
//! Every problem is collected and reported at once as `FILE:LINE:COL: level:
//! message (rule ID)`; a TOML syntax or schema error stops at that error (toml
//! reports one) and keeps toml's own message.

use super::raw::{RawAllow, RawFile, RawPort};
use super::{
    Basis, Endpoint, HostGroup, Inactive, Origin, Policy, Proto, Rule, RuleOption, RuleSource, Sel,
    Severity, Zone, ZoneIdx,
};
use crate::model::parse_cidr;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Embedded presets: (name, file name shown in diagnostics, text). A preset
/// may select another as its base (`preset = "..."`), merged before it.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "common",
        "presets/common.toml",
        include_str!("../../rules/presets/common.toml"),
    ),
    (
        "alpha",
        "presets/alpha.toml",
        include_str!("../../rules/presets/alpha.toml"),
    ),
    (
        "alpha_prime",
        "presets/alpha_prime.toml",
        include_str!("../../rules/presets/alpha_prime.toml"),
    ),
    (
        "beta",
        "presets/beta.toml",
        include_str!("../../rules/presets/beta.toml"),
    ),
    (
        "beta_prime",
        "presets/beta_prime.toml",
        include_str!("../../rules/presets/beta_prime.toml"),
    ),
];

/// The models a site selects (`preset = "..."`).
pub const MODELS: &[&str] = &["alpha", "alpha_prime", "beta", "beta_prime"];

/// Presets that are bases of the models, which a site cannot select itself.
pub const BASE_PRESETS: &[&str] = &["common"];

/// Default severity when no `[severity] default` is given.
const FALLBACK_SEVERITY: Severity = Severity::High;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One error or warning, located in a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
    pub rule: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(r) = &self.rule {
            write!(f, " (rule {r})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} error(s) in the rules", errors.len())]
    Invalid {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
}

/// A loaded policy and the warnings about it.
pub type Loaded = (Policy, Vec<Diagnostic>);

struct Source<'a> {
    name: String,
    text: &'a str,
}

/// Byte offset → 1-based (line, column in characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

struct Diags<'a> {
    sources: Vec<Source<'a>>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Diags<'a> {
    fn push(
        &mut self,
        level: Level,
        src: usize,
        span: Range<usize>,
        msg: String,
        rule: Option<&str>,
    ) {
        let (file, (line, col)) = match self.sources.get(src) {
            Some(s) => (s.name.clone(), line_col(s.text, span.start)),
            None => (String::from("?"), (1, 1)),
        };
        let d = Diagnostic {
            level,
            file,
            line,
            col,
            message: msg,
            rule: rule.map(str::to_string),
        };
        match level {
            Level::Error => self.errors.push(d),
            Level::Warning => self.warnings.push(d),
        }
    }
    fn err(&mut self, src: usize, span: Range<usize>, msg: String, rule: Option<&str>) {
        self.push(Level::Error, src, span, msg, rule);
    }
    fn warn(&mut self, src: usize, span: Range<usize>, msg: String, rule: Option<&str>) {
        self.push(Level::Warning, src, span, msg, rule);
    }
}

/// A string with where it was written.
#[derive(Clone, Debug)]
struct At<T> {
    v: T,
    src: usize,
    span: Range<usize>,
}

fn at<T: Clone>(s: &Spanned<T>, src: usize) -> At<T> {
    At {
        v: s.get_ref().clone(),
        src,
        span: s.span(),
    }
}

struct ZoneB {
    id: At<String>,
    name_ja: Option<String>,
    name_en: Option<String>,
    cidrs: Vec<At<String>>,
    vlans: Vec<At<i64>>,
    external: bool,
    intra_zone_allowed: bool,
}

struct GroupB {
    id: At<String>,
    description: Option<String>,
    zone: Option<At<String>>,
    cidrs: Vec<At<String>>,
}

struct RuleB {
    raw: RawAllow,
    src: usize,
    origin: Origin,
    /// The file each inheritable key was written in: a site override takes the
    /// keys it does not give from the preset rule, with their spans.
    at: KeySrc,
}

#[derive(Clone, Copy)]
struct KeySrc {
    from: usize,
    to: usize,
    proto: usize,
    ports: usize,
    guideline: usize,
    option: usize,
}

impl RuleB {
    fn new(raw: RawAllow, src: usize, origin: Origin) -> RuleB {
        let at = KeySrc {
            from: src,
            to: src,
            proto: src,
            ports: src,
            guideline: src,
            option: src,
        };
        RuleB {
            raw,
            src,
            origin,
            at,
        }
    }

    /// `self` overrides `old`: every key `self` leaves out comes from `old`.
    fn inherit(&mut self, old: &mut RuleB) {
        let (r, o) = (&mut self.raw, &mut old.raw);
        if r.from.is_none() {
            r.from = o.from.take();
            self.at.from = old.at.from;
        }
        if r.to.is_none() {
            r.to = o.to.take();
            self.at.to = old.at.to;
        }
        if r.proto.is_none() {
            r.proto = o.proto.take();
            self.at.proto = old.at.proto;
        }
        if r.ports.is_none() {
            r.ports = o.ports.take();
            self.at.ports = old.at.ports;
        }
        if r.guideline.is_none() {
            r.guideline = o.guideline.take();
            self.at.guideline = old.at.guideline;
        }
        if r.option.is_none() {
            r.option = o.option.take();
            self.at.option = old.at.option;
        }
        if r.description.is_none() {
            r.description = o.description.take();
        }
    }
}

/// The keys of a `guideline = { ... }` source table.
const SOURCE_KEYS: &[&str] = &["basis", "document", "quote", "url", "by", "note"];

/// `guideline`: a string (an unclassified note) or a source table whose
/// `basis` says what the rule rests on and which other keys it needs.
fn parse_source(v: &toml::Value) -> Result<RuleSource, String> {
    let t = match v {
        toml::Value::String(s) => {
            return Ok(RuleSource {
                basis: Some(Basis::Note),
                note: Some(s.clone()),
                ..RuleSource::default()
            })
        }
        toml::Value::Table(t) => t,
        _ => return Err("`guideline` must be a string or a table { basis = ..., ... }".into()),
    };
    let mut out = RuleSource::default();
    for (k, val) in t {
        if !SOURCE_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "unknown key `guideline.{k}` (known: {})",
                SOURCE_KEYS.join(", ")
            ));
        }
        let Some(text) = val.as_str() else {
            return Err(format!("`guideline.{k}` must be a string"));
        };
        let slot = match k.as_str() {
            "basis" => {
                out.basis = Some(match text {
                    "text" => Basis::Text,
                    "practice" => Basis::Practice,
                    "unverified" => Basis::Unverified,
                    other => {
                        return Err(format!(
                            "`guideline.basis` {other:?}: expected \"text\" (primary text read: give `document` and `quote`), \"practice\" (give `by`: who does it) or \"unverified\" (give `note`: why no text was found)"
                        ))
                    }
                });
                continue;
            }
            "document" => &mut out.document,
            "quote" => &mut out.quote,
            "url" => &mut out.url,
            "by" => &mut out.by,
            "note" => &mut out.note,
            other => {
                return Err(format!(
                    "unknown key `guideline.{other}` (known: {})",
                    SOURCE_KEYS.join(", ")
                ))
            }
        };
        *slot = Some(text.to_string());
    }
    let need: &[(&str, bool)] = match out.basis {
        None => {
            return Err("`guideline` table without `basis` (text, practice or unverified)".into())
        }
        Some(Basis::Text) => &[
            ("document", out.document.is_some()),
            ("quote", out.quote.is_some()),
        ],
        Some(Basis::Practice) => &[("by", out.by.is_some())],
        Some(Basis::Unverified) | Some(Basis::Note) => &[("note", out.note.is_some())],
    };
    if let Some((k, _)) = need.iter().find(|(_, has)| !has) {
        let basis = out.basis.map_or("", Basis::as_str);
        return Err(format!("`guideline` with basis {basis:?} needs `{k}`"));
    }
    Ok(out)
}

fn valid_zone_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

/// `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128).
fn parse_port_num(v: i64) -> Option<u16> {
    u16::try_from(v).ok().filter(|p| *p != 0)
}

fn parse_port(p: &RawPort) -> Result<(u16, u16), String> {
    match p {
        RawPort::Num(n) => parse_port_num(*n)
            .map(|p| (p, p))
            .ok_or_else(|| format!("port {n} is outside 1-65535")),
        RawPort::Range(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (s.trim(), s.trim()),
            };
            let num = |x: &str| {
                x.parse::<i64>()
                    .ok()
                    .and_then(parse_port_num)
                    .ok_or_else(|| {
                        format!("invalid port range {s:?} (ports are 1-65535, e.g. \"8000-8080\")")
                    })
            };
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(format!("port range {s:?} is reversed"));
            }
            Ok((lo, hi))
        }
    }
}

/// A TOML or schema error of `text` (named `file`) as a located error, as the
/// loader reports its own (the detectors' floor reads `[detect]` with it).
pub fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> Diagnostic {
    let (line, col) = line_col(text, e.span().map_or(0, |s| s.start));
    Diagnostic {
        level: Level::Error,
        file: file.to_string(),
        line,
        col,
        message: e.message().trim_end().to_string(),
        rule: None,
    }
}

fn parse_file(d: &mut Diags<'_>, src: usize) -> Option<RawFile> {
    let text = d.sources.get(src)?.text;
    match toml::from_str::<RawFile>(text) {
        Ok(f) => Some(f),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            d.err(src, span, e.message().trim_end().to_string(), None);
            None
        }
    }
}

impl Policy {
    /// Load a site (or stand-alone) rules file from disk.
    pub fn load(path: &Path) -> Result<Loaded, LoadError> {
        Policy::load_text(path).map(|(loaded, _)| loaded)
    }

    /// [`Policy::load`], also giving the file's text as it was read (the text
    /// these rules come from: a SIGHUP compares it with the file as it is then).
    pub fn load_text(path: &Path) -> Result<(Loaded, String), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let loaded = Policy::from_source(&path.display().to_string(), &text)?;
        Ok((loaded, text))
    }

    /// Load one of the embedded presets on its own.
    pub fn preset(name: &str) -> Result<Loaded, LoadError> {
        let text = format!("preset = {name:?}\n");
        Policy::from_source("<preset>", &text)
    }

    /// Load rules text; `name` is the file name used in diagnostics.
    pub fn from_source(name: &str, text: &str) -> Result<Loaded, LoadError> {
        let mut d = Diags {
            sources: vec![Source {
                name: name.to_string(),
                text,
            }],
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let result = build(&mut d);
        // Report in file order: site file first, then the preset; by line and column.
        let order = |x: &Diagnostic| (x.file != name, x.file.clone(), x.line, x.col);
        d.errors.sort_by_key(order);
        d.warnings.sort_by_key(order);
        match result {
            Some(p) if d.errors.is_empty() => Ok((p, d.warnings)),
            _ => Err(LoadError::Invalid {
                errors: d.errors,
                warnings: d.warnings,
            }),
        }
    }
}

/// Load the rules: read the preset chain and the site, merge them, then
/// validate each part into the [`Policy`] (named steps below), collecting
/// every error and warning in `d`.
fn build(d: &mut Diags<'_>) -> Option<Policy> {
    let (files, preset_name) = read_chain(d)?;
    let m = merge(d, files);
    if !within_limits(d, &m) {
        return None;
    }
    let zone_idx = |id: &str| {
        m.zones
            .iter()
            .position(|z| z.id.v == id)
            .map(|i| ZoneIdx(i as u16))
    };
    let out_zones = resolve_zones(d, &m.zones, &zone_idx);
    let out_groups = resolve_groups(d, &m.groups, &zone_idx);
    let default_zone = m.default_zone.clone().and_then(|z| match zone_idx(&z.v) {
        Some(i) => Some(i),
        None => {
            d.err(
                z.src,
                z.span.clone(),
                format!("default_zone: unknown zone {:?}", z.v),
                None,
            );
            None
        }
    });
    let (sev_out, default_severity) = resolve_severity(d, &m.severity, &zone_idx);
    let options = resolve_options(d, &m.declared, &m.enabled);
    let (out_rules, inactive, rule_at) = resolve_rules(d, &m.rules, &zone_idx, &m.groups, &options);
    if !d.errors.is_empty() {
        return None;
    }
    let t = prefix_tables(d, &out_zones, &m.zones);
    let Merged {
        site_name,
        guideline,
        groups,
        ..
    } = m;
    let mut policy = Policy {
        site_name,
        guideline,
        preset: preset_name,
        serial: {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
        options,
        inactive,
        zones: out_zones,
        hostgroups: out_groups,
        rules: out_rules,
        default_zone,
        severity: sev_out,
        default_severity,
        v4: t.v4,
        v6: t.v6,
        vlan_only: t.vlan_only,
        vlan_zone: t.vlan_zone,
        local_zone: t.local_zone,
        multicast_zone: t.multicast_zone,
        directed_broadcast: t.directed_broadcast,
        pair_rules: Vec::new(),
        pair_severity: Vec::new(),
    };
    policy.index_pairs();
    warn_built(d, &policy, &groups, &rule_at);
    Some(policy)
}

/// The files in merge order: the preset chain, bases first, then the site
/// (index 0), with the name of the preset the site selected.
type Chain = (Vec<(usize, RawFile, Origin)>, Option<String>);

/// Parse the site and the preset chain it selects.
fn read_chain(d: &mut Diags<'_>) -> Option<Chain> {
    let site = parse_file(d, 0)?;
    // (file index, parsed file, origin) in merge order: preset first.
    let mut files: Vec<(usize, RawFile, Origin)> = Vec::new();
    let mut preset_name = None;
    // The preset chain: a model preset may build on a base preset
    // (`alpha_prime` on `alpha` on `common`); bases are merged first.
    let mut next = site.preset.as_ref().map(|p| (0, p.clone()));
    while let Some((from_src, p)) = next.take() {
        let name = p.get_ref().as_str();
        let Some((n, file, text)) = PRESETS.iter().find(|(n, _, _)| *n == name) else {
            let names: Vec<&str> = PRESETS
                .iter()
                .map(|(n, _, _)| *n)
                .filter(|n| !BASE_PRESETS.contains(n))
                .collect();
            d.err(
                from_src,
                p.span(),
                format!(
                    "unknown preset {:?} (known: {})",
                    p.get_ref(),
                    names.join(", ")
                ),
                None,
            );
            break;
        };
        if from_src == 0 && BASE_PRESETS.contains(n) {
            d.err(from_src, p.span(), format!("preset {n:?} is the base of the model presets, not a model: choose alpha, alpha_prime, beta or beta_prime"), None);
            break;
        }
        if files.len() >= PRESETS.len() {
            d.err(
                from_src,
                p.span(),
                format!("preset {n:?}: the presets select each other in a loop"),
                None,
            );
            break;
        }
        d.sources.push(Source {
            name: (*file).to_string(),
            text,
        });
        let idx = d.sources.len() - 1;
        let pf = parse_file(d, idx)?;
        next = pf.preset.as_ref().map(|q| (idx, q.clone()));
        files.push((idx, pf, Origin::Preset));
        preset_name.get_or_insert_with(|| (*n).to_string());
    }
    files.reverse();
    files.push((0, site, Origin::Site));
    Some((files, preset_name))
}

/// What the files say once merged, before validation.
struct Merged {
    site_name: Option<String>,
    guideline: Option<String>,
    default_zone: Option<At<String>>,
    zones: Vec<ZoneB>,
    groups: Vec<GroupB>,
    severity: BTreeMap<String, At<String>>,
    rules: Vec<RuleB>,
    declared: Vec<(At<String>, Option<String>)>,
    enabled: Vec<At<String>>,
}

/// Merge the files in order: a later file fills in or replaces what an
/// earlier one declared (zones, host groups, severities; rules only with
/// `override`), then the built-in zones.
fn merge(d: &mut Diags<'_>, files: Vec<(usize, RawFile, Origin)>) -> Merged {
    let mut site_name = None;
    let mut guideline = None;
    let mut default_zone: Option<At<String>> = None;
    let mut zones: Vec<ZoneB> = Vec::new();
    let mut groups: Vec<GroupB> = Vec::new();
    let mut severity: BTreeMap<String, At<String>> = BTreeMap::new();
    let mut rules: Vec<RuleB> = Vec::new();
    let mut declared: Vec<(At<String>, Option<String>)> = Vec::new();
    let mut enabled: Vec<At<String>> = Vec::new();
    for (src, file, origin) in files {
        if file.detect.is_some() && origin == Origin::Preset {
            d.err(
                src,
                0..0,
                "a preset cannot set [detect]: detector thresholds are the site's".into(),
                None,
            );
        }
        for o in file.option {
            let id = at(&o.id, src);
            if declared.iter().any(|(p, _)| p.v == id.v) {
                d.err(
                    src,
                    id.span.clone(),
                    format!("option {:?} is declared twice", id.v),
                    None,
                );
                continue;
            }
            declared.push((id, o.description));
        }
        if let Some(list) = &file.options {
            if origin == Origin::Preset {
                if let Some(first) = list.first() {
                    d.err(
                        src,
                        first.span(),
                        "a preset declares options (`[[option]]`); only the site turns them on"
                            .into(),
                        None,
                    );
                }
            } else {
                enabled.extend(list.iter().map(|o| at(o, src)));
            }
        }
        if let Some(s) = file.site {
            // Bases come first: a model's name replaces its base's, the site's both.
            site_name = s.name.or(site_name);
            guideline = s.guideline.or(guideline);
        }
        if let Some(z) = &file.default_zone {
            default_zone = Some(at(z, src));
        }
        merge_zones(d, src, file.zone, &mut zones);
        merge_groups(d, src, file.hostgroup, &mut groups);
        if let Some(sev) = file.severity {
            for (k, v) in sev {
                severity.insert(k, at(&v, src));
            }
        }
        merge_rules(d, src, origin, file.allow, &mut rules);
    }
    add_builtin_zones(&mut zones);
    Merged {
        site_name,
        guideline,
        default_zone,
        zones,
        groups,
        severity,
        rules,
        declared,
        enabled,
    }
}
/// A file's zones: new ones (and their implicit parents) are added; one the
/// preset declared is filled in by the site.
fn merge_zones(
    d: &mut Diags<'_>,
    src: usize,
    raw: Vec<super::raw::RawZone>,
    zones: &mut Vec<ZoneB>,
) {
    for z in raw {
        let id = at(&z.id, src);
        if !valid_zone_id(&id.v) {
            d.err(src, id.span.clone(), format!("invalid zone id {:?} (lower-case letters, digits, '_' and '-', sub-zones joined by '.')", id.v), None);
            continue;
        }
        let top_id = id.v.split('.').next().unwrap_or_default();
        if top_id == super::LOCAL_ZONE || top_id == super::MULTICAST_ZONE {
            d.err(src, id.span.clone(), format!("zone id {:?} is reserved: zonewatch declares the zones {:?} (segment-local traffic) and {:?} (routable multicast groups no zone claims) itself", id.v, super::LOCAL_ZONE, super::MULTICAST_ZONE), None);
            continue;
        }
        let cidrs = z
            .cidrs
            .map(|v| v.iter().map(|c| at(c, src)).collect::<Vec<_>>());
        let vlans = z
            .vlans
            .map(|v| v.iter().map(|c| at(c, src)).collect::<Vec<_>>());
        if let Some(prev) = zones.iter_mut().find(|p| p.id.v == id.v) {
            if prev.id.src == src {
                d.err(
                    src,
                    id.span.clone(),
                    format!("zone {:?} is defined twice", id.v),
                    None,
                );
                continue;
            }
            // A site entry fills in or replaces the preset's declaration.
            prev.id = id;
            prev.name_ja = z.name_ja.or(prev.name_ja.take());
            prev.name_en = z.name_en.or(prev.name_en.take());
            if let Some(c) = cidrs {
                prev.cidrs = c;
            }
            if let Some(v) = vlans {
                prev.vlans = v;
            }
            prev.external = z.external.unwrap_or(prev.external);
            prev.intra_zone_allowed = z.intra_zone_allowed.unwrap_or(prev.intra_zone_allowed);
            continue;
        }
        // Implicit parents: `lgwan.term` makes `lgwan` exist.
        let segs: Vec<&str> = id.v.split('.').collect();
        for n in 1..segs.len() {
            let parent = segs[..n].join(".");
            if !zones.iter().any(|p| p.id.v == parent) {
                zones.push(ZoneB {
                    id: At {
                        v: parent,
                        src,
                        span: id.span.clone(),
                    },
                    name_ja: None,
                    name_en: None,
                    cidrs: Vec::new(),
                    vlans: Vec::new(),
                    external: z.external.unwrap_or(false),
                    intra_zone_allowed: true,
                });
            }
        }
        zones.push(ZoneB {
            id,
            name_ja: z.name_ja,
            name_en: z.name_en,
            cidrs: cidrs.unwrap_or_default(),
            vlans: vlans.unwrap_or_default(),
            external: z.external.unwrap_or(false),
            intra_zone_allowed: z.intra_zone_allowed.unwrap_or(true),
        });
    }
}

/// A file's host groups: new ones are added; one the preset declared is
/// filled in by the site.
fn merge_groups(
    d: &mut Diags<'_>,
    src: usize,
    raw: Vec<super::raw::RawHostGroup>,
    groups: &mut Vec<GroupB>,
) {
    for g in raw {
        let id = at(&g.id, src);
        let cidrs = g
            .cidrs
            .map(|v| v.iter().map(|c| at(c, src)).collect::<Vec<_>>());
        let zone = g.zone.as_ref().map(|z| at(z, src));
        if let Some(prev) = groups.iter_mut().find(|p| p.id.v == id.v) {
            if prev.id.src == src {
                d.err(
                    src,
                    id.span.clone(),
                    format!("host group {:?} is defined twice", id.v),
                    None,
                );
                continue;
            }
            prev.id = id;
            prev.description = g.description.or(prev.description.take());
            prev.zone = zone.or(prev.zone.take());
            if let Some(c) = cidrs {
                prev.cidrs = c;
            }
            continue;
        }
        groups.push(GroupB {
            id,
            description: g.description,
            zone,
            cidrs: cidrs.unwrap_or_default(),
        });
    }
}

/// A file's allow rules: new ids are added; a site rule with `override`
/// replaces the preset rule of its id, keeping what it leaves out.
fn merge_rules(
    d: &mut Diags<'_>,
    src: usize,
    origin: Origin,
    raw: Vec<RawAllow>,
    rules: &mut Vec<RuleB>,
) {
    for r in raw {
        let id = r.id.get_ref().clone();
        let span = r.id.span();
        match rules.iter().position(|p| p.raw.id.get_ref() == &id) {
            Some(i) if rules[i].src == src => {
                d.err(
                    src,
                    span,
                    format!("rule id {id:?} is used twice"),
                    Some(&id),
                );
            }
            Some(i) => {
                if r.override_preset {
                    // A model changing its base's rule is the preset's design;
                    // a site changing a preset rule is worth a word.
                    if origin == Origin::Site {
                        d.warn(
                            src,
                            span,
                            format!("site rule replaces preset rule {id:?}"),
                            Some(&id),
                        );
                    }
                    let mut nb = RuleB::new(r, src, origin);
                    nb.inherit(&mut rules[i]);
                    rules[i] = nb;
                } else {
                    d.err(src, span, format!("rule id {id:?} is already a preset rule; set `override = true` to replace it"), Some(&id));
                }
            }
            None => {
                if r.override_preset && origin == Origin::Site {
                    d.err(
                        src,
                        span,
                        format!("`override = true` but the preset has no rule {id:?}"),
                        Some(&id),
                    );
                }
                rules.push(RuleB::new(r, src, origin));
            }
        }
    }
}

/// The built-in zones, last: segment-local responders, and routable multicast
/// groups (a site zone listing a group block wins by longest prefix).
fn add_builtin_zones(zones: &mut Vec<ZoneB>) {
    // The built-in zones, last: segment-local responders, and routable multicast
    // groups (a site zone listing a group block wins by longest prefix).
    for (id, ja, en, cidrs) in [
        (
            super::LOCAL_ZONE,
            "セグメント内通信",
            "Segment-local (cannot leave its link)",
            &[][..],
        ),
        (
            super::MULTICAST_ZONE,
            "マルチキャスト",
            "Routable multicast groups",
            &["224.0.0.0/4", "ff00::/8"][..],
        ),
    ] {
        zones.push(ZoneB {
            id: At {
                v: id.to_string(),
                src: 0,
                span: 0..0,
            },
            name_ja: Some(ja.to_string()),
            name_en: Some(en.to_string()),
            cidrs: cidrs
                .iter()
                .map(|c| At {
                    v: c.to_string(),
                    src: 0,
                    span: 0..0,
                })
                .collect(),
            vlans: Vec::new(),
            external: false,
            intra_zone_allowed: false,
        });
    }
}

/// Zones, rules and host groups fit the packed verdict and the indices.
fn within_limits(d: &mut Diags<'_>, m: &Merged) -> bool {
    let (zones, rules, groups) = (&m.zones, &m.rules, &m.groups);
    if zones.len() > super::MAX_ZONES {
        // A flow's cached verdict stores zone indices in 10 bits (`Verdict::pack`).
        d.err(
            0,
            0..0,
            format!(
                "too many zones: {} declared (preset and site together, with the 2 built-in zones `local` and `multicast`), the limit is {}",
                zones.len(),
                super::MAX_ZONES
            ),
            None,
        );
        return false;
    }
    if rules.len() > usize::from(u16::MAX) || groups.len() > usize::from(u16::MAX) {
        d.err(
            0,
            0..0,
            format!(
                "too many rules ({}) or host groups ({}): the limit is 65535 each",
                rules.len(),
                groups.len()
            ),
            None,
        );
        return false;
    }
    true
}

/// Validate the zones: parents, CIDRs, VLANs.
fn resolve_zones(
    d: &mut Diags<'_>,
    zones: &[ZoneB],
    zone_idx: &dyn Fn(&str) -> Option<ZoneIdx>,
) -> Vec<Zone> {
    let mut out_zones: Vec<Zone> = Vec::with_capacity(zones.len());
    for z in zones {
        let parent = z.id.v.rsplit_once('.').and_then(|(p, _)| zone_idx(p));
        let top_id = z.id.v.split('.').next().unwrap_or(&z.id.v);
        let top = zone_idx(top_id).unwrap_or(ZoneIdx(0));
        let mut cidrs = Vec::new();
        for c in &z.cidrs {
            match parse_cidr(&c.v) {
                Ok(n) => cidrs.push(n),
                Err(m) => d.err(
                    c.src,
                    c.span.clone(),
                    format!("zone {:?}: {m}", z.id.v),
                    None,
                ),
            }
        }
        let mut vlans = Vec::new();
        for v in &z.vlans {
            match u16::try_from(v.v).ok().filter(|x| (1..=4094).contains(x)) {
                Some(x) => vlans.push(x),
                None => d.err(
                    v.src,
                    v.span.clone(),
                    format!("zone {:?}: VLAN id {} is outside 1-4094", z.id.v, v.v),
                    None,
                ),
            }
        }
        out_zones.push(Zone {
            id: z.id.v.clone(),
            name_ja: z.name_ja.clone(),
            name_en: z.name_en.clone(),
            parent,
            top,
            cidrs,
            vlans,
            external: z.external,
            intra_zone_allowed: z.intra_zone_allowed,
        });
    }
    out_zones
}

/// Validate the host groups: ids, zones, CIDRs.
fn resolve_groups(
    d: &mut Diags<'_>,
    groups: &[GroupB],
    zone_idx: &dyn Fn(&str) -> Option<ZoneIdx>,
) -> Vec<HostGroup> {
    let mut out_groups = Vec::with_capacity(groups.len());
    for g in groups {
        if zone_idx(&g.id.v).is_some() {
            d.err(
                g.id.src,
                g.id.span.clone(),
                format!("host group {:?} has the same id as a zone", g.id.v),
                None,
            );
        }
        let zone = match &g.zone {
            Some(z) => match zone_idx(&z.v) {
                Some(i) => Some(i),
                None => {
                    d.err(
                        z.src,
                        z.span.clone(),
                        format!("host group {:?}: unknown zone {:?}", g.id.v, z.v),
                        None,
                    );
                    None
                }
            },
            None => None,
        };
        let mut cidrs = Vec::new();
        for c in &g.cidrs {
            match parse_cidr(&c.v) {
                Ok(n) => cidrs.push(n),
                Err(m) => d.err(
                    c.src,
                    c.span.clone(),
                    format!("host group {:?}: {m}", g.id.v),
                    None,
                ),
            }
        }
        out_groups.push(HostGroup {
            id: g.id.v.clone(),
            description: g.description.clone(),
            zone,
            cidrs,
        });
    }
    out_groups
}

/// Validate the `[severity]` table: (initiator, responder, level) and the default.
fn resolve_severity(
    d: &mut Diags<'_>,
    severity: &BTreeMap<String, At<String>>,
    zone_idx: &dyn Fn(&str) -> Option<ZoneIdx>,
) -> (Vec<(Sel, Sel, Severity)>, Severity) {
    let mut sev_out = Vec::new();
    let mut default_severity = FALLBACK_SEVERITY;
    for (k, v) in severity {
        let Some(sev) = Severity::parse(&v.v) else {
            d.err(
                v.src,
                v.span.clone(),
                format!(
                    "severity {:?}: unknown level {:?} (info, low, medium, high, critical)",
                    k, v.v
                ),
                None,
            );
            continue;
        };
        if k == "default" {
            default_severity = sev;
            continue;
        }
        let Some((a, b)) = k.split_once("->") else {
            d.err(
                v.src,
                v.span.clone(),
                format!("severity key {k:?} is not \"INITIATOR->RESPONDER\" or \"default\""),
                None,
            );
            continue;
        };
        let mut sel = |s: &str| -> Option<Sel> {
            let s = s.trim();
            if s == "*" {
                return Some(Sel::Any);
            }
            match zone_idx(s) {
                Some(i) => Some(Sel::Zone(i)),
                None => {
                    d.err(
                        v.src,
                        v.span.clone(),
                        format!("severity key {k:?}: unknown zone {s:?}"),
                        None,
                    );
                    None
                }
            }
        };
        if let (Some(a), Some(b)) = (sel(a), sel(b)) {
            sev_out.push((a, b, sev));
        }
    }
    (sev_out, default_severity)
}

/// The declared options, turned on as the site lists them.
fn resolve_options(
    d: &mut Diags<'_>,
    declared: &[(At<String>, Option<String>)],
    enabled: &[At<String>],
) -> Vec<RuleOption> {
    let mut options: Vec<RuleOption> = declared
        .iter()
        .map(|(id, description)| RuleOption {
            id: id.v.clone(),
            description: description.clone(),
            enabled: false,
        })
        .collect();
    for e in enabled {
        match options.iter_mut().find(|o| o.id == e.v) {
            Some(o) => o.enabled = true,
            None => {
                let known: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
                d.err(
                    e.src,
                    e.span.clone(),
                    format!(
                        "unknown option {:?} (the preset declares: {})",
                        e.v,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                    None,
                );
            }
        }
    }
    options
}

/// Rules that take part in verdicts, rules that are off (with why), and where
/// each active rule was written.
type Resolved = (Vec<Rule>, Vec<(Rule, Inactive)>, Vec<(usize, Range<usize>)>);

/// Validate every merged rule ([`resolve_rule`]).
fn resolve_rules(
    d: &mut Diags<'_>,
    rules: &[RuleB],
    zone_idx: &dyn Fn(&str) -> Option<ZoneIdx>,
    groups: &[GroupB],
    options: &[RuleOption],
) -> Resolved {
    let mut out_rules = Vec::with_capacity(rules.len());
    let mut inactive = Vec::new();
    let mut rule_at = Vec::with_capacity(rules.len());
    for rb in rules {
        let Some((rule, why)) = resolve_rule(d, rb, zone_idx, groups, options) else {
            continue;
        };
        match why {
            None => {
                out_rules.push(rule);
                rule_at.push((rb.src, rb.raw.id.span()));
            }
            Some(Inactive::SitePorts) => {
                d.warn(
                    rb.src,
                    rb.raw.id.span(),
                    format!(
                        "rule {:?} is off: the preset leaves its ports to the site (`ports = [\"site\"]`) and this site gives none; its flows are judged by `[severity]` until a site rule with `id = {:?}`, `override = true` and `ports = [...]` names them",
                        rule.id, rule.id
                    ),
                    Some(&rule.id),
                );
                inactive.push((rule, Inactive::SitePorts));
            }
            Some(w) => inactive.push((rule, w)),
        }
    }
    (out_rules, inactive, rule_at)
}

/// The address look-up tables of a policy.
struct Tables {
    v4: PrefixMap<Ipv4Net, Vec<ZoneIdx>>,
    v6: PrefixMap<Ipv6Net, Vec<ZoneIdx>>,
    vlan_only: BTreeMap<u16, ZoneIdx>,
    vlan_zone: BTreeMap<u16, ZoneIdx>,
    local_zone: ZoneIdx,
    multicast_zone: ZoneIdx,
    directed_broadcast: Vec<(u32, Ipv4Net)>,
}

/// Longest-prefix tables, VLAN zones and directed broadcasts; warns about a
/// prefix two zones claim.
fn prefix_tables(d: &mut Diags<'_>, out_zones: &[Zone], zones: &[ZoneB]) -> Tables {
    let mut v4: PrefixMap<Ipv4Net, Vec<ZoneIdx>> = PrefixMap::new();
    let mut v6: PrefixMap<Ipv6Net, Vec<ZoneIdx>> = PrefixMap::new();
    let mut vlan_only = BTreeMap::new();
    let mut vlan_zone = BTreeMap::new();
    let mut directed_broadcast = Vec::new();
    for (i, z) in out_zones.iter().enumerate() {
        let zi = ZoneIdx(i as u16);
        for v in &z.vlans {
            vlan_zone.entry(*v).or_insert(zi);
        }
        for c in &z.cidrs {
            if let IpNet::V4(n4) = c {
                if n4.prefix_len() <= 30 && !n4.network().is_multicast() {
                    directed_broadcast.push((u32::from(n4.broadcast()), *n4));
                }
            }
        }
        for (n, c) in z.cidrs.iter().enumerate() {
            let owners = match c {
                IpNet::V4(n4) => {
                    if v4.get(n4).is_none() {
                        v4.insert(*n4, Vec::new());
                    }
                    v4.get_mut(n4)
                }
                IpNet::V6(n6) => {
                    if v6.get(n6).is_none() {
                        v6.insert(*n6, Vec::new());
                    }
                    v6.get_mut(n6)
                }
            };
            if let Some(owners) = owners {
                if let Some(first) = owners.first() {
                    let zb = &zones[i].cidrs[n];
                    let msg = format!(
                        "{c} is claimed by zones {:?} and {:?}",
                        out_zones[usize::from(first.0)].id,
                        z.id
                    );
                    let (s, sp) = (zb.src, zb.span.clone());
                    d.warn(s, sp, msg, None);
                }
                owners.push(zi);
            }
        }
        if z.cidrs.is_empty() {
            for v in &z.vlans {
                vlan_only.entry(*v).or_insert(zi);
            }
        }
    }
    let zone_idx = |id: &str| {
        out_zones
            .iter()
            .position(|z| z.id == id)
            .map(|i| ZoneIdx(i as u16))
    };
    directed_broadcast.sort_unstable();
    directed_broadcast.dedup();
    Tables {
        v4,
        v6,
        vlan_only,
        vlan_zone,
        local_zone: zone_idx(super::LOCAL_ZONE).unwrap_or(ZoneIdx(0)),
        multicast_zone: zone_idx(super::MULTICAST_ZONE).unwrap_or(ZoneIdx(0)),
        directed_broadcast,
    }
}

/// Warnings that need the built policy: host-group addresses outside their
/// zone, dead and shadowed rules, My Number crossings without ports.
fn warn_built(
    d: &mut Diags<'_>,
    policy: &Policy,
    groups: &[GroupB],
    rule_at: &[(usize, Range<usize>)],
) {
    for (g, gb) in policy.hostgroups.iter().zip(groups) {
        for (c, cb) in g.cidrs.iter().zip(&gb.cidrs) {
            let z = policy.explicit_zone_of(c.network());
            match (g.zone, z) {
                (Some(want), Some(got)) if policy.is_within(got, want) => {}
                (Some(want), _) => d.warn(
                    cb.src,
                    cb.span.clone(),
                    format!(
                        "host group {:?}: {c} is outside its zone {:?}",
                        g.id,
                        policy.zone(want).id
                    ),
                    None,
                ),
                (None, None) => d.warn(
                    cb.src,
                    cb.span.clone(),
                    format!("host group {:?}: {c} is outside every zone", g.id),
                    None,
                ),
                (None, Some(_)) => {}
            }
        }
    }
    for (i, r) in policy.rules.iter().enumerate() {
        let (src, span) = rule_at[i].clone();
        let dead_side = if !r.from.iter().any(|e| policy.endpoint_live(e)) {
            Some("from")
        } else if !r.to.iter().any(|e| policy.endpoint_live(e)) {
            Some("to")
        } else {
            None
        };
        if let Some(side) = dead_side {
            d.warn(src, span, format!("dead rule: `{side}` resolves to no address (zone or host group without CIDRs?)"), Some(&r.id));
            continue;
        }
        if let Some((a, b)) = policy.mynumber_crossing(r) {
            if r.ports.is_empty() && r.proto != Proto::Icmp {
                d.warn(
                    src,
                    span.clone(),
                    format!(
                        "rule crosses the My Number boundary ({a} -> {b}) without naming ports: a link of マイナンバー利用事務系 is limited to named applications; give `proto` and `ports`"
                    ),
                    Some(&r.id),
                );
            }
        }
        if let Some(earlier) = policy.rules[..i].iter().find(|e| policy.covers(e, r)) {
            d.warn(
                src,
                span,
                format!(
                    "shadowed rule: fully covered by earlier rule {:?}, never decides a verdict",
                    earlier.id
                ),
                Some(&r.id),
            );
        }
    }
}

/// Validate one merged rule: its endpoints, protocol, ports, source and option.
/// Returns the rule and, if it takes no part in verdicts, why; `None` after an
/// error (already reported).
fn resolve_rule(
    d: &mut Diags<'_>,
    rb: &RuleB,
    zone_idx: &dyn Fn(&str) -> Option<ZoneIdx>,
    groups: &[GroupB],
    options: &[RuleOption],
) -> Option<(Rule, Option<Inactive>)> {
    let r = &rb.raw;
    let id = r.id.get_ref().as_str();
    let errors_before = d.errors.len();
    let ends = |d: &mut Diags<'_>,
                list: &Option<Spanned<Vec<Spanned<String>>>>,
                src: usize,
                side: &str|
     -> Vec<Endpoint> {
        let Some(list) = list else {
            d.err(
                rb.src,
                r.id.span(),
                format!("`{side}` is missing (only a site rule with `override = true` may leave it out, to keep the preset rule's)"),
                Some(id),
            );
            return Vec::new();
        };
        if list.get_ref().is_empty() {
            d.err(src, list.span(), format!("`{side}` is empty"), Some(id));
        }
        let mut out = Vec::new();
        for e in list.get_ref() {
            let name = e.get_ref().as_str();
            if name == super::LOCAL_ZONE {
                d.err(src, e.span(), format!("`{side}`: zone {name:?} holds segment-local traffic, which never crosses a zone and no rule judges"), Some(id));
            } else if let Some(z) = zone_idx(name) {
                out.push(Endpoint::Zone(z));
            } else if let Some(g) = groups.iter().position(|g| g.id.v == name) {
                out.push(Endpoint::HostGroup(g as u16));
            } else if name.contains(['.', ':'])
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_hexdigit() || c == ':')
                && (name.contains('/') || name.parse::<IpAddr>().is_ok())
            {
                match parse_cidr(name) {
                    Ok(n) => out.push(Endpoint::Cidr(n)),
                    Err(m) => d.err(src, e.span(), format!("`{side}`: {m}"), Some(id)),
                }
            } else {
                d.err(
                    src,
                    e.span(),
                    format!("`{side}`: {name:?} is not a zone, host group, CIDR or address"),
                    Some(id),
                );
            }
        }
        out
    };
    let from = ends(d, &r.from, rb.at.from, "from");
    let to = ends(d, &r.to, rb.at.to, "to");
    let proto = match &r.proto {
        None => Proto::Any,
        Some(p) => match p.get_ref().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            "any" => Proto::Any,
            other => {
                d.err(
                    rb.at.proto,
                    p.span(),
                    format!("unknown proto {other:?} (tcp, udp, icmp, any)"),
                    Some(id),
                );
                Proto::Any
            }
        },
    };
    let raw_ports: &[Spanned<RawPort>] = r.ports.as_deref().unwrap_or(&[]);
    let is_site = |p: &Spanned<RawPort>| matches!(p.get_ref(), RawPort::Range(s) if s == "site");
    let mut site_ports = false;
    let mut ports = Vec::new();
    if let Some(p) = raw_ports.iter().find(|p| is_site(p)) {
        if raw_ports.len() != 1 {
            d.err(
                rb.at.ports,
                p.span(),
                "`\"site\"` must be the only entry of `ports`".into(),
                Some(id),
            );
        } else if rb.at.ports == rb.src && rb.origin == Origin::Site {
            d.err(rb.at.ports, p.span(), "`ports = [\"site\"]` leaves the ports to the site, so only a preset can say it; give the ports here".into(), Some(id));
        }
        site_ports = true;
    } else {
        for p in raw_ports {
            match parse_port(p.get_ref()) {
                Ok(x) => ports.push(x),
                Err(m) => d.err(rb.at.ports, p.span(), m, Some(id)),
            }
        }
    }
    if proto == Proto::Icmp && !raw_ports.is_empty() {
        d.err(
            rb.at.ports,
            raw_ports.first().map_or(r.id.span(), |p| p.span()),
            "`ports` given with proto \"icmp\", which has no ports".into(),
            Some(id),
        );
    }
    let source = match &r.guideline {
        None => None,
        Some(g) => match parse_source(g.get_ref()) {
            Ok(s) => Some(s),
            Err(m) => {
                d.err(rb.at.guideline, g.span(), m, Some(id));
                None
            }
        },
    };
    let option = match &r.option {
        None => None,
        Some(o) => match options.iter().find(|x| x.id == *o.get_ref()) {
            Some(x) => Some(x),
            None => {
                d.err(
                    rb.at.option,
                    o.span(),
                    format!(
                        "`option`: {:?} is not declared by an `[[option]]`",
                        o.get_ref()
                    ),
                    Some(id),
                );
                None
            }
        },
    };
    if d.errors.len() > errors_before {
        return None;
    }
    let why = match option {
        Some(o) if !o.enabled => Some(Inactive::OptionOff(o.id.clone())),
        _ if site_ports => Some(Inactive::SitePorts),
        _ => None,
    };
    let rule = Rule {
        id: id.to_string(),
        from,
        to,
        proto,
        ports,
        description: r.description.clone(),
        source,
        option: option.map(|o| o.id.clone()),
        origin: rb.origin,
    };
    Some((rule, why))
}

impl Policy {
    /// Zone by explicit CIDRs only (no VLAN, no default zone).
    pub(super) fn explicit_zone_of(&self, ip: IpAddr) -> Option<ZoneIdx> {
        match ip {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .and_then(|(_, z)| z.first().copied()),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .and_then(|(_, z)| z.first().copied()),
        }
    }

    /// The first (initiator top zone, responder top zone) pair of `r` where
    /// exactly one side is the `mynumber` zone, by zone id.
    pub(super) fn mynumber_crossing(&self, r: &Rule) -> Option<(String, String)> {
        let my = self.zone_by_id("mynumber")?;
        let froms: Vec<ZoneIdx> = r.from.iter().flat_map(|e| self.endpoint_tops(e)).collect();
        let tos: Vec<ZoneIdx> = r.to.iter().flat_map(|e| self.endpoint_tops(e)).collect();
        froms.iter().find_map(|f| {
            tos.iter()
                .find(|t| (*f == my) != (**t == my))
                .map(|t| (self.zone(*f).id.clone(), self.zone(*t).id.clone()))
        })
    }

    /// True if some address can match the endpoint.
    fn endpoint_live(&self, e: &Endpoint) -> bool {
        match e {
            Endpoint::Cidr(_) => true,
            Endpoint::HostGroup(g) => self
                .hostgroups
                .get(usize::from(*g))
                .is_some_and(|g| !g.cidrs.is_empty()),
            Endpoint::Zone(z) => {
                self.default_zone.is_some_and(|dz| self.is_within(dz, *z))
                    || self.zones.iter().enumerate().any(|(i, x)| {
                        (!x.cidrs.is_empty() || !x.vlans.is_empty())
                            && self.is_within(ZoneIdx(i as u16), *z)
                    })
            }
        }
    }

    /// Networks an endpoint stands for (zones: their CIDRs and their sub-zones').
    fn endpoint_nets(&self, e: &Endpoint) -> Vec<IpNet> {
        match e {
            Endpoint::Cidr(c) => vec![*c],
            Endpoint::HostGroup(g) => self
                .hostgroups
                .get(usize::from(*g))
                .map(|g| g.cidrs.clone())
                .unwrap_or_default(),
            Endpoint::Zone(z) => self
                .zones
                .iter()
                .enumerate()
                .filter(|(i, _)| self.is_within(ZoneIdx(*i as u16), *z))
                .flat_map(|(_, x)| x.cidrs.iter().copied())
                .collect(),
        }
    }

    fn endpoint_covers(&self, big: &Endpoint, small: &Endpoint) -> bool {
        match (big, small) {
            (Endpoint::Zone(a), Endpoint::Zone(b)) => self.is_within(*b, *a),
            (Endpoint::HostGroup(a), Endpoint::HostGroup(b)) if a == b => true,
            (_, Endpoint::Zone(_)) => false,
            (Endpoint::Zone(a), _) => {
                let nets = self.endpoint_nets(small);
                !nets.is_empty()
                    && nets.iter().all(|n| {
                        self.explicit_zone_of(n.network())
                            .is_some_and(|z| self.is_within(z, *a))
                    })
            }
            _ => {
                let bigs = self.endpoint_nets(big);
                let nets = self.endpoint_nets(small);
                !nets.is_empty() && nets.iter().all(|n| bigs.iter().any(|b| b.contains(n)))
            }
        }
    }

    /// True if every flow `later` allows is already allowed by `earlier`.
    fn covers(&self, earlier: &Rule, later: &Rule) -> bool {
        let proto_ok = match (earlier.proto, later.proto) {
            (Proto::Any, _) => true,
            (a, b) => a == b,
        };
        let ports_ok = earlier.ports.is_empty()
            || (!later.ports.is_empty()
                && later
                    .ports
                    .iter()
                    .all(|&(lo, hi)| earlier.ports.iter().any(|&(a, b)| a <= lo && hi <= b)));
        // An `any` rule with ports also matches non-port protocols only if it has no ports.
        let any_ports_ok = !(earlier.proto == Proto::Any
            && !earlier.ports.is_empty()
            && later.proto == Proto::Icmp);
        proto_ok
            && ports_ok
            && any_ports_ok
            && later
                .from
                .iter()
                .all(|s| earlier.from.iter().any(|b| self.endpoint_covers(b, s)))
            && later
                .to
                .iter()
                .all(|s| earlier.to.iter().any(|b| self.endpoint_covers(b, s)))
    }
}
