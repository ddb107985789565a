//! # geomesh-deploy
//!
//! The cloud rollout of a topology: `geomesh deploy render` turns
//! `topology.yaml` into a Terraform root with one provider configuration
//! and one set of module blocks per region (Terraform cannot `for_each`
//! over providers) — network, edges, selectors and, when the topology has
//! them, recorders — plus the topology's data as a tfvars file.
//!
//! - [`plan`]: what can be deployed — per node its public address, the
//!   exact ingress it needs and the files it reads — or every reason the
//!   topology cannot be;
//! - [`render`]: the root's files for a plan, with copies of the
//!   hand-written modules (`deploy/terraform/modules`);
//! - [`hclfmt`]: `terraform fmt` layout, which every file keeps.
//!
//! It does **not** run Terraform, read credentials (Terraform reads them
//! at plan time) or talk to a cloud. The modules, the boot script and the
//! systemd units (`deploy/systemd`) are documented in `docs/DEPLOY.md`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod hclfmt;
pub mod plan;
pub mod render;

use std::path::{Component, Path, PathBuf};

use geomesh_core::Topology;

pub use plan::{Plan, Problem};

/// Why a root could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The topology is valid but cannot be deployed; every reason.
    #[error("{} problem(s) make the topology undeployable", .0.len())]
    Undeployable(Vec<Problem>),
    /// Rendered text did not lay out (a bug in the renderer).
    #[error("rendered HCL: {0}")]
    Layout(#[from] hclfmt::FormatError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Renders the root for `topology` (loaded from `topology_path`) into
/// `out`, creating it. Files of ours are replaced (and `recorders.tf`
/// removed when the topology no longer has recorders); anything else in
/// `out` (your `terraform.tfvars`, a backend, `.terraform/`) is left alone.
/// Returns the files written, in order.
pub fn render(
    topology: &Topology,
    topology_path: &Path,
    out: &Path,
) -> Result<Vec<PathBuf>, DeployError> {
    let base = topology_path.parent().unwrap_or(Path::new(""));
    let plan = plan::plan(topology, base).map_err(DeployError::Undeployable)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let base_abs = base
        .canonicalize()
        .or_else(|_| std::env::current_dir())
        .map_err(io(base))?;
    let out_abs = out.canonicalize().map_err(io(out))?;
    let name = topology_path
        .file_name()
        .map_or_else(|| "topology.yaml".into(), |n| n.to_string_lossy());
    let files = render::files(&plan, &name, &relative(&out_abs, &base_abs))?;
    // A recorders file of ours from when the topology had recorders would
    // call modules for nodes that are gone: it goes with them.
    if !files.iter().any(|(rel, _)| rel == render::RECORDERS_TF) {
        let stale = out.join(render::RECORDERS_TF);
        let ours =
            std::fs::read_to_string(&stale).is_ok_and(|text| text.starts_with(render::GENERATED));
        if ours {
            std::fs::remove_file(&stale).map_err(io(&stale))?;
        }
    }
    let mut written = Vec::with_capacity(files.len());
    for (rel, text) in files {
        let path = out.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // Replace by rename: a reader never sees half a file.
        let tmp = path.with_extension("geomesh-new");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The `/`-separated way from directory `from` to directory `to` (both
/// absolute): `..` when `to` is `from`'s parent.
fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<Component<'_>> = from.components().collect();
    let t: Vec<Component<'_>> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_directories() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(r("/w/ops/terraform", "/w/ops"), "..");
        assert_eq!(r("/w/ops", "/w/ops"), ".");
        assert_eq!(r("/w/a/b", "/w/c"), "../../c");
        assert_eq!(r("/w", "/w/ops"), "ops");
    }
}
