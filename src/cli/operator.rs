//! How operating commands find the cluster and prove they may operate:
//! flags, else the environment, else the `geomesh dev` mesh running on
//! this machine (which writes where it is to [`dev_state_path`]).

use std::path::PathBuf;

use anyhow::Context;

/// Where `geomesh dev` writes its state for operating commands (removed on exit).
pub fn dev_state_path() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    // The owner of this process's /proc entry is its user: one file per user.
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("geomesh-dev-{uid}.json"))
}

/// The running dev mesh's state, if there is one.
fn dev_state() -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dev_state_path()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Selector public API URLs: the given ones, else the dev mesh's.
pub fn selectors(given: &[String]) -> anyhow::Result<Vec<String>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let s = dev_state().context(
        "no --selector given and no `geomesh dev` running here: pass --selector URL (or GEOMESH_SELECTOR)",
    )?;
    Ok(s["selectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["url"].as_str().map(str::to_string))
        .collect())
}

/// The operator token: from the given file, else the dev mesh's.
pub fn token(given: Option<&PathBuf>) -> anyhow::Result<String> {
    let path = match given {
        Some(p) => p.clone(),
        None => PathBuf::from(
            dev_state()
                .and_then(|s| s["operator"]["token_file"].as_str().map(str::to_string))
                .context(
                    "no --operator-token given and no `geomesh dev` running here: pass --operator-token FILE",
                )?,
        ),
    };
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading the operator token {}", path.display()))?
        .trim()
        .to_string())
}

/// The dev mesh's topology file, credentials directory and first selector
/// (for the admin API's mutual TLS), if one runs here.
pub fn dev_admin() -> Option<(PathBuf, PathBuf, geomesh_core::SelectorId)> {
    let s = dev_state()?;
    let id = s["selectors"][0]["id"].as_str()?;
    Some((
        PathBuf::from(s["topology"].as_str()?),
        PathBuf::from(s["certs_dir"].as_str()?),
        geomesh_core::SelectorId::new(id).ok()?,
    ))
}

/// `GET path` on each selector in turn (with the operator's `token` when
/// given); the first answer that parses, else the last error.
pub async fn first_answer<T: serde::de::DeserializeOwned>(
    selectors: &[String],
    path: &str,
    token: Option<&str>,
    timeout: std::time::Duration,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let mut last = None;
    for url in selectors {
        let mut req = http.get(format!("{}{path}", url.trim_end_matches('/')));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = async { req.send().await?.error_for_status()?.json::<T>().await }.await;
        match r {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(anyhow::Error::new(e).context(url.clone())),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no selector given")))
        .with_context(|| format!("no selector answered GET {path}"))
}

/// A request to each selector in turn (`req` builds it from the base URL):
/// the first success's JSON; a refusal (4xx) at once, since another node
/// would say the same; else the last error.
pub async fn call(
    selectors: &[String],
    req: impl Fn(&str) -> reqwest::RequestBuilder,
) -> anyhow::Result<serde_json::Value> {
    let mut last = None;
    for base in selectors {
        let base = base.trim_end_matches('/');
        match req(base).send().await {
            Ok(r) => {
                let status = r.status();
                let v: serde_json::Value = r
                    .json()
                    .await
                    .with_context(|| format!("{base}: not JSON"))?;
                if status.is_success() {
                    return Ok(v);
                }
                if status.is_client_error() {
                    anyhow::bail!(
                        "{base}: {status}: {}",
                        v["message"].as_str().unwrap_or("refused")
                    );
                }
                last = Some(anyhow::anyhow!("{base}: {status}: {v}"));
            }
            Err(e) => last = Some(anyhow::anyhow!("{base}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no selector given")))
}
