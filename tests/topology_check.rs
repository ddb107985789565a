//! `geomesh topology check` on the corpus in `tests/topologies/`: every
//! broken file gets exit 2 and its expected, positioned error; valid files
//! (and `topology.example.yaml`) exit 0; nothing panics.

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_geomesh"))
        .args(["topology", "check"])
        .arg(path)
        .output()
        .expect("run geomesh");
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn broken_topologies_give_positioned_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/topologies/broken");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut n = 0;
    for line in expected.lines() {
        let (file, want) = line.split_once('\t').expect("file<TAB>expected");
        let path = dir.join(file);
        let (code, stdout, stderr) = check(&path);
        assert_eq!(code, 2, "{file}: exit {code}\n{stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        let prefix = format!("{}:", path.display());
        let first_error = stdout
            .lines()
            .find(|l| l.contains(": error: "))
            .unwrap_or_else(|| panic!("{file}: no error line in {stdout}"));
        assert_eq!(first_error.strip_prefix(&prefix), Some(want), "{file}");
        // Every diagnostic line carries a position.
        for l in stdout
            .lines()
            .filter(|l| l.contains("error: ") || l.contains("warning: "))
        {
            let rest = l.strip_prefix(&prefix).unwrap();
            let pos: Vec<&str> = rest.splitn(3, ':').collect();
            assert!(
                pos[0].parse::<u32>().is_ok() && pos[1].parse::<u32>().is_ok(),
                "{file}: no position in {l}"
            );
        }
        n += 1;
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(n, files, "every broken file has an expectation");
    assert!(n >= 15);
}

#[test]
fn valid_topologies_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, _) = check(&root.join("topology.example.yaml"));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("valid: 7 regions, 14 edges, 3 selectors, 0 warning(s)"),
        "{stdout}"
    );

    let (code, stdout, _) =
        check(&root.join("tests/topologies/valid/edgeless-region-warning.yaml"));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(":26:9: warning: regions[2]: region \"ap-south\" has no edges"),
        "{stdout}"
    );
}

#[test]
fn unreadable_file_is_an_error_not_invalid() {
    let (code, _, stderr) = check(Path::new("/nonexistent/topology.yaml"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read /nonexistent/topology.yaml"),
        "{stderr}"
    );
}
