//! Issue #17: the floors of src/ (ARCHITECTURE.md "Floors") are kept by
//! `tools/layers.py`, run by `make lint`. The check passes on the tree, and it
//! fails, naming file and line, when a copy of the tree gains one import that
//! goes up (decode, L1, importing pipeline, L5) or a new cycle, and when a
//! file of floors L0-L3 names `serde_json` outside its test code (detectors
//! return typed alerts; JSON is written above them).

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn check(src: &Path) -> (i32, String) {
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("tools/layers.py"))
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for tools/layers.py: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// A scratch copy of src/ (dropped with the `TempDir`) and the text of one
/// of its files.
fn scratch(file: &str) -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("src");
    copy_tree(&Path::new(ROOT).join("src"), &copy);
    let f = copy.join(file);
    let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{file}: {e}"));
    (dir, copy, f, text)
}

#[test]
fn imports_only_go_down() {
    let src = Path::new(ROOT).join("src");
    let (code, out) = check(&src);
    assert_eq!(code, 0, "{out}");

    let (_dir, copy, f, text) = scratch("decode/mod.rs");
    std::fs::write(
        &f,
        format!("{text}\n#[allow(unused_imports)]\nuse crate::pipeline::Pipeline;\n"),
    )
    .expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("decode/mod.rs:")
            && out.contains("decode (floor L1) imports pipeline (floor L5): imports only go down"),
        "{out}"
    );

    // A cycle on one floor: capture -> decode and decode -> capture.
    std::fs::write(&f, format!("{text}\nuse crate::capture::FileSource;\n")).expect("write");
    let c = copy.join("capture/mod.rs");
    let ctext = std::fs::read_to_string(&c).expect("capture/mod.rs");
    std::fs::write(&c, format!("{ctext}\nuse crate::decode::decode;\n")).expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("import cycle between capture, decode"),
        "{out}"
    );
}

#[test]
fn no_json_below_the_outputs_outside_tests() {
    let (_dir, copy, f, text) = scratch("detect/scan.rs");

    // Test code may use it (a `#[cfg(test)]` item, braces in strings too).
    std::fs::write(
        &f,
        format!(
            "{text}\n#[cfg(test)]\nmod json_in_tests {{\n    fn f() -> String {{\n        \
             serde_json::json!({{\"a\": \"}}\"}}).to_string()\n    }}\n}}\n"
        ),
    )
    .expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 0, "{out}");

    // A detector building JSON fails, named by file and line.
    std::fs::write(
        &f,
        format!("{text}\nfn evidence() -> serde_json::Value {{\n    serde_json::json!({{}})\n}}\n"),
    )
    .expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 1, "{out}");
    let line = text.lines().count() + 2;
    assert!(
        out.contains(&format!(
            "detect/scan.rs:{line}: serde_json in detect (floor L3)"
        )),
        "{out}"
    );
}

#[test]
fn every_module_names_its_floor() {
    let (_dir, copy, f, text) = scratch("flow/hash.rs");
    assert!(
        text.starts_with("//! Floor L2 (`flow`)."),
        "{}",
        &text[..60]
    );

    // Docs that name another floor fail.
    std::fs::write(&f, text.replacen("Floor L2", "Floor L3", 1)).expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("flow/hash.rs:1: the module docs say floor L3, but flow is on floor L2"),
        "{out}"
    );

    // Docs that name none fail too.
    std::fs::write(&f, text.replacen("//! Floor L2 (`flow`). ", "//! ", 1)).expect("write");
    let (code, out) = check(&copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("flow/hash.rs:1: the module docs do not start with \"Floor L2\""),
        "{out}"
    );
}
