//! Every cargo-fuzz target (`fuzz/fuzz_targets/`) on stable Rust: the
//! committed corpus (`fuzz/corpus/<target>/`), the seeds the crates
//! generate, then inputs mutated from them by a seeded PRNG. cargo-fuzz
//! itself needs nightly (`scripts/fuzz.sh` runs it); this keeps the same
//! bodies running in every `cargo test`.
//!
//! - `GEOMESH_FUZZ_ITERATIONS` (default per target, below) and
//!   `GEOMESH_FUZZ_SEED` (default fixed) vary the run;
//! - `GEOMESH_WRITE_FUZZ_CORPUS=1` writes the generated seeds into the
//!   corpus directories (existing files are kept).

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that turn up in the formats fuzzed here (JSON, YAML, SDP, DNS).
const INTERESTING: &[u8] = b"\0\x01\x7f\x80\xff\"{}[]:,.-=\r\n\\ 0a";

/// A libFuzzer-style mutation of `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                input.remove(i);
            }
            4 => input.truncate(rng.below(input.len() + 1)),
            5 => {
                // Splice: a prefix of this one, a suffix of another.
                let at = rng.below(input.len() + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 if input.len() >= 2 => {
                // Duplicate a chunk (repeats frames, fields, lines).
                let a = rng.below(input.len());
                let b = (a + 1 + rng.below(16)).min(input.len());
                let chunk = input[a..b].to_vec();
                input.splice(b..b, chunk);
            }
            7 if input.len() >= 2 => {
                // Delete a chunk (drops a field, a line, an m-section).
                let a = rng.below(input.len());
                let b = (a + 1 + rng.below(64)).min(input.len());
                input.drain(a..b);
            }
            _ => {
                let i = rng.below(input.len() + 1);
                input.splice(i..i, (0..rng.below(8)).map(|_| rng.next() as u8));
            }
        }
    }
}

/// Runs `body` over the corpus of `target` plus `seeds`, then over
/// `iterations` generated inputs (random bytes one time in eight).
fn run(target: &str, seeds: Vec<(String, Vec<u8>)>, iterations: u64, body: fn(&[u8])) {
    let dir = corpus_dir(target);
    if std::env::var_os("GEOMESH_WRITE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the seed corpus is committed)", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(corpus.len() >= 5, "{target}: seed corpus too small");
    corpus.extend(seeds.into_iter().map(|(_, b)| b));
    for input in &corpus {
        body(input);
    }
    let iterations = env_u64("GEOMESH_FUZZ_ITERATIONS", iterations);
    let mut rng = Rng(env_u64("GEOMESH_FUZZ_SEED", 0x6f63_746f));
    let mut input = Vec::new();
    for i in 0..iterations {
        input.clear();
        if i % 8 == 0 {
            let len = rng.below(160);
            input.extend((0..len).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, &mut input, other);
        }
        body(&input);
    }
}

fn named(seeds: Vec<(&'static str, String, Vec<u8>)>, target: &str) -> Vec<(String, Vec<u8>)> {
    seeds
        .into_iter()
        .filter(|(t, _, _)| *t == target)
        .map(|(_, n, b)| (n, b))
        .collect()
}

#[test]
fn octo_wire() {
    let seeds = geomesh_mesh::fuzz::seed_corpus()
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    run("octo_wire", seeds, 300_000, geomesh_mesh::fuzz::octo_wire);
}

#[test]
fn octo_rtp() {
    let seeds = named(geomesh_edge::fuzz::seeds(), "octo_rtp");
    run("octo_rtp", seeds, 300_000, geomesh_edge::fuzz::octo_rtp);
}

#[test]
fn tokens() {
    run(
        "tokens",
        geomesh_core::fuzz::tokens_seeds(),
        100_000,
        geomesh_core::fuzz::tokens,
    );
}

#[test]
fn topology_yaml() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/topologies");
    let mut seeds = Vec::new();
    for dir in [root.clone(), root.join("valid"), root.join("broken")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                seeds.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    seeds.push((
        "example.yaml".into(),
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topology.example.yaml"))
            .unwrap(),
    ));
    run(
        "topology_yaml",
        seeds,
        20_000,
        geomesh_core::fuzz::topology_yaml,
    );
}

#[test]
fn signaling() {
    let seeds = named(geomesh_edge::fuzz::seeds(), "signaling");
    run("signaling", seeds, 3_000, geomesh_edge::fuzz::signaling);
}

#[test]
fn whip_whep() {
    let seeds = named(geomesh_edge::fuzz::seeds(), "whip_whep");
    run("whip_whep", seeds, 3_000, geomesh_edge::fuzz::whip_whep);
}

#[test]
fn api_bodies() {
    let seeds = named(geomesh_selector::fuzz::seeds(), "api_bodies");
    run(
        "api_bodies",
        seeds,
        5_000,
        geomesh_selector::fuzz::api_bodies,
    );
}

#[test]
fn dns_query() {
    let seeds = named(geomesh_selector::fuzz::seeds(), "dns_query");
    run(
        "dns_query",
        seeds,
        20_000,
        geomesh_selector::fuzz::dns_query,
    );
}

#[test]
fn recorder_media() {
    run(
        "recorder_media",
        geomesh_recorder::fuzz::seeds(),
        20_000,
        geomesh_recorder::fuzz::recorder_media,
    );
}
