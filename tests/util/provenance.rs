//! The one reader of the public capture set's PROVENANCE.md tables
//! (`../shared/captures/public`, next to the crate). Two test crates use it: the
//! integration tests (`tests/util.rs`, `mod provenance`) and the file reader's unit
//! tests (`src/capture/file/mod.rs`, by `#[path]`), so it uses std only and
//! nothing of either crate.

/// The directory of the Community ID specification's test set (PROVENANCE.md
/// section `j_community_id`): its table lists the pcaps by bare file name.
pub const CIDSPEC_DIR: &str = "j_community_id";

/// One capture listed in a PROVENANCE.md table.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// Path relative to the public directory, e.g. "a_scans/chrissanders_synscan.pcapng".
    pub rel: String,
    /// Packet count from the "packets" column (for damaged files: frames read
    /// before the error).
    pub packets: u64,
    /// The packets column says "(read before error)": the file is damaged.
    /// (Read by the file reader's unit tests; the integration tests replay the
    /// damaged files like any other.)
    #[allow(dead_code)]
    pub before_error: bool,
}

/// The captures of the index table (section `## Index`; paths relative to the
/// public directory).
pub fn index(md: &str) -> Vec<Provenance> {
    listed(md, "## Index", "")
}

/// The Community ID specification's pcaps (the table of section
/// `## j_community_id`), with their directory [`CIDSPEC_DIR`].
pub fn cidspec(md: &str) -> Vec<Provenance> {
    listed(md, "## j_community_id", CIDSPEC_DIR)
}

/// The rows of the table under `heading`, paths prefixed with `dir` (if any);
/// panics on a packets cell that does not start with a number.
fn listed(md: &str, heading: &str, dir: &str) -> Vec<Provenance> {
    table(md, heading)
        .into_iter()
        .map(|(file, packets)| {
            let digits: String = packets
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .collect();
            let n: u64 = digits.replace(',', "").parse().unwrap_or_else(|_| {
                panic!("PROVENANCE.md: bad packet count {packets:?} for {file}")
            });
            Provenance {
                rel: if dir.is_empty() {
                    file.to_string()
                } else {
                    format!("{dir}/{file}")
                },
                packets: n,
                before_error: packets.contains("read before error"),
            }
        })
        .collect()
}

/// Rows of the table in the section whose heading line starts with `heading`
/// (up to the next `## `): (file cell, packets cell), the columns found by the
/// header row's `file` and `packets...` names.
fn table<'a>(md: &'a str, heading: &str) -> Vec<(&'a str, &'a str)> {
    let mut rows = Vec::new();
    let mut in_section = false;
    let mut cols: Option<(usize, usize)> = None;
    for line in md.lines() {
        if line.starts_with("## ") {
            in_section = line.starts_with(heading);
            continue;
        }
        if !in_section || !line.starts_with('|') {
            continue;
        }
        // | file | bytes | packets | source |  -> ["", file, bytes, packets, source, ""]
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some((file_col, packets_col)) = cols else {
            let file_col = cells.iter().position(|c| *c == "file");
            let packets_col = cells.iter().position(|c| c.starts_with("packets"));
            if let (Some(f), Some(p)) = (file_col, packets_col) {
                cols = Some((f, p));
            }
            continue;
        };
        let (Some(file), Some(packets)) = (cells.get(file_col), cells.get(packets_col)) else {
            continue;
        };
        if file.starts_with('-') || file.is_empty() {
            continue; // separator row
        }
        rows.push((*file, *packets));
    }
    rows
}
