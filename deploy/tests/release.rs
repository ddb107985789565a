//! scripts/release.sh packages what a machine installs (the binary, its
//! boot script and the units, under one top directory), with a SHA-256
//! file, the glibc the binary needs, and the same bytes every time.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn package(out: &Path) -> (String, String) {
    // Any glibc binary stands in for geomesh: packaging does not run it.
    let run = Command::new("bash")
        .arg(repo().join("scripts/release.sh"))
        .args(["--binary", "/bin/true", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let tarball = said.lines().next().unwrap().to_string();
    (tarball, said)
}

#[test]
fn release_tarball_holds_what_the_boot_script_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let (tarball, said) = package(tmp.path());
    let name = Path::new(&tarball)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_string();
    assert!(
        name.starts_with("geomesh-") && name.ends_with("-x86_64-unknown-linux-gnu"),
        "{name}"
    );
    assert!(said.contains("needs: glibc >= 2."), "{said}");

    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    // install.sh runs "$dir/bootstrap.sh", which installs "$RELEASE_DIR/geomesh"
    // and "$RELEASE_DIR/systemd/geomesh-$ROLE.service".
    for f in [
        "geomesh",
        "bootstrap.sh",
        "systemd/geomesh-edge.service",
        "systemd/geomesh-selector.service",
        "systemd/geomesh-recorder.service",
        "BUILD-INFO",
    ] {
        assert!(
            list.lines().any(|l| l == format!("{name}/{f}")),
            "{f} missing:\n{list}"
        );
    }
    let install = std::fs::read_to_string(terraform().join("modules/node/install.sh")).unwrap();
    assert!(install.contains("exec \"$dir/bootstrap.sh\" \"$dir\""));
    let boot = std::fs::read_to_string(repo().join("deploy/machine/bootstrap.sh")).unwrap();
    assert!(boot.contains("\"$RELEASE_DIR/systemd/geomesh-$ROLE.service\""));
    assert!(boot.contains("\"$RELEASE_DIR/geomesh\""));

    // The .sha256 file checks with sha256sum, as the boot script does.
    let check = Command::new("sha256sum")
        .args(["-c", &format!("{name}.tar.gz.sha256")])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let again = tempfile::tempdir().unwrap();
    let (second, _) = package(again.path());
    assert_eq!(
        std::fs::read(&tarball).unwrap(),
        std::fs::read(second).unwrap(),
        "the same binary packs to the same bytes"
    );
}
