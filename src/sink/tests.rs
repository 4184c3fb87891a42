//! The JSON-lines sink writes whole lines, several sinks each get every
//! alert, and the registry's flags are well-formed.

use super::*;
use crate::alert::Alert;

fn alert(id: &str) -> Alert {
    Alert {
        id: id.to_string(),
        ..Alert::default()
    }
}

#[test]
fn json_lines_writes_one_whole_line_per_alert() {
    let mut out = JsonLines(Vec::new());
    out.alert(&alert("a")).expect("write");
    out.alert(&alert("b")).expect("write");
    let text = String::from_utf8(out.0).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    for (line, id) in lines.iter().zip(["a", "b"]) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["id"], id);
    }
}

#[test]
fn fanout_gives_every_alert_to_each_sink_in_order() {
    let (one, two) = (Collect::default(), Collect::default());
    let mut sink = combine(vec![
        Box::new(one.clone()),
        Box::new(Discard),
        Box::new(two.clone()),
    ])
    .expect("three sinks");
    for id in ["a", "b"] {
        sink.alert(&alert(id)).expect("alert");
    }
    sink.flush().expect("flush");
    for c in [one, two] {
        let ids: Vec<String> =
            c.0.lock()
                .expect("lock")
                .iter()
                .map(|a| a.id.clone())
                .collect();
        assert_eq!(ids, ["a", "b"]);
    }
}

#[test]
fn combine_passes_one_sink_through_and_none_for_none() {
    assert!(combine(Vec::new()).is_none());
    assert!(combine(vec![Box::new(Discard)]).is_some());
}

#[test]
fn registry_flags_are_unique_and_alerts_is_first() {
    assert_eq!(SINKS[0].flag, "alerts");
    let mut flags: Vec<&str> = SINKS.iter().map(|s| s.flag).collect();
    flags.sort_unstable();
    flags.dedup();
    assert_eq!(flags.len(), SINKS.len());
    assert!(SINKS[0].writes_stdout(std::ffi::OsStr::new("-")));
    assert!(!SINKS[0].writes_stdout(std::ffi::OsStr::new("a.jsonl")));
}
