//! Floor L0 (`model`). Packet time (ns since the Unix epoch) as text: one RFC 3339 form, UTC with
//! microseconds, for every output (`2024-01-02T03:04:05.123456Z`).

use serde::Serializer;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `SystemTime` of a packet timestamp.
pub fn ns_to_system_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// `2024-01-02T03:04:05.123456Z`.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_micros(ns_to_system_time(ns)).to_string()
}

/// [`rfc3339`] appended to `out` (writing into a `Vec` cannot fail).
pub fn write_rfc3339(out: &mut Vec<u8>, ns: u64) {
    let _ = write!(
        out,
        "{}",
        humantime::format_rfc3339_micros(ns_to_system_time(ns))
    );
}

/// `serialize_with` helper: packet time (ns) written as [`rfc3339`] text.
pub fn ser_rfc3339<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(ns_to_system_time(*ns)))
}
