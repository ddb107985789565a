//! Network partitions for fault tests, without touching the network: when
//! the environment names a partition file ([`ENV`]), every call this
//! process makes to another selector consults it, and a call across a cut
//! behaves as one whose packets are lost (it times out). The file is the
//! whole cluster's: one cut per line, two selector ids (`sel-1 sel-3`),
//! both directions; `#` starts a comment; a missing file cuts nothing.
//! Unset (production), nothing is read and no call is delayed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The variable naming the partition file.
pub const ENV: &str = "GEOMESH_TEST_PARTITIONS";
/// How often the file is looked at again, at most.
const RECHECK: Duration = Duration::from_millis(20);

struct Cuts {
    path: PathBuf,
    me: OnceLock<String>,
    cache: Mutex<Cache>,
}

struct Cache {
    checked: Option<Instant>,
    modified: Option<SystemTime>,
    pairs: HashSet<(String, String)>,
}

fn cuts() -> Option<&'static Cuts> {
    static CUTS: OnceLock<Option<Cuts>> = OnceLock::new();
    CUTS.get_or_init(|| {
        let path = std::env::var_os(ENV)?;
        tracing::warn!(path = ?path, "fault injection: selector calls follow a partition file");
        Some(Cuts {
            path: path.into(),
            me: OnceLock::new(),
            cache: Mutex::new(Cache {
                checked: None,
                modified: None,
                pairs: HashSet::new(),
            }),
        })
    })
    .as_ref()
}

/// Names this process's selector (once, at start); calls are judged from it.
pub fn set_self(id: &str) {
    if let Some(c) = cuts() {
        let _ = c.me.set(id.to_string());
    }
}

/// Whether a call from this selector to `to` crosses a cut now.
pub fn is_cut(to: &str) -> bool {
    let Some(c) = cuts() else { return false };
    let Some(me) = c.me.get() else { return false };
    let mut cache = c.cache.lock().expect("partition cache lock poisoned");
    let now = Instant::now();
    if cache
        .checked
        .is_none_or(|t| now.duration_since(t) >= RECHECK)
    {
        cache.checked = Some(now);
        let modified = std::fs::metadata(&c.path).and_then(|m| m.modified()).ok();
        if modified != cache.modified {
            cache.modified = modified;
            cache.pairs = std::fs::read_to_string(&c.path)
                .map(|t| parse(&t))
                .unwrap_or_default();
        }
    }
    cache.pairs.contains(&(me.clone(), to.to_string()))
}

/// The cuts of a partition file, both directions of each.
fn parse(text: &str) -> HashSet<(String, String)> {
    let mut pairs = HashSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut ids = line.split_whitespace();
        if let (Some(a), Some(b)) = (ids.next(), ids.next()) {
            pairs.insert((a.to_string(), b.to_string()));
            pairs.insert((b.to_string(), a.to_string()));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_symmetric_and_comments_ignored() {
        let p = parse("sel-1 sel-3\n# sel-1 sel-2\n\nsel-2  sel-3 # trailing\njunk\n");
        assert!(p.contains(&("sel-3".into(), "sel-1".into())));
        assert!(p.contains(&("sel-2".into(), "sel-3".into())));
        assert!(!p.contains(&("sel-1".into(), "sel-2".into())));
        assert_eq!(p.len(), 4);
    }
}
