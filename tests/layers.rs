//! Issue #17: the floors of src/ (ARCHITECTURE.md "Floors") are kept by
//! `tools/layers.py`, run by `make lint`. The check passes on the tree, and it
//! fails, naming file and line, when a copy of the tree gains one import that
//! goes up (decode, L1, importing pipeline, L5) or a new cycle.

use std::path::Path;
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

#[test]
fn imports_only_go_down() {
    let src = Path::new(ROOT).join("src");
    let (code, out) = check(&src);
    assert_eq!(code, 0, "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("src");
    copy_tree(&src, &copy);
    let f = copy.join("decode/mod.rs");
    let text = std::fs::read_to_string(&f).expect("decode/mod.rs");
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
