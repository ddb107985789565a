//! The `octo_wire` fuzz target on stable Rust: the committed seed corpus,
//! then generated inputs (random bytes and mutations of the seeds) from a
//! seeded PRNG. cargo-fuzz itself needs nightly; this keeps the same body
//! ([`geomesh_mesh::fuzz::octo_wire`]) running in every `cargo test`.
//!
//! - `GEOMESH_FUZZ_ITERATIONS` (default 300 000) and `GEOMESH_FUZZ_SEED`
//!   (default fixed) vary the run;
//! - `GEOMESH_WRITE_FUZZ_CORPUS=1` rewrites `fuzz/corpus/octo_wire/` from
//!   [`geomesh_mesh::fuzz::seed_corpus`].

use std::path::PathBuf;

use geomesh_mesh::fuzz::{octo_wire, seed_corpus};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/octo_wire")
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

/// A libFuzzer-style mutation of `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = [0, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff][rng.below(8)];
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
                // Duplicate a chunk (repeats frames in a stream).
                let a = rng.below(input.len());
                let b = (a + 1 + rng.below(16)).min(input.len());
                let chunk = input[a..b].to_vec();
                input.splice(b..b, chunk);
            }
            _ => {
                let i = rng.below(input.len() + 1);
                input.splice(i..i, (0..rng.below(8)).map(|_| rng.next() as u8));
            }
        }
    }
}

#[test]
fn octo_wire_target_on_the_corpus_and_generated_inputs() {
    let dir = corpus_dir();
    if std::env::var_os("GEOMESH_WRITE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seed_corpus() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the seed corpus is committed)", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(corpus.len() >= 10, "seed corpus too small");
    for seed in &corpus {
        octo_wire(seed);
    }
    corpus.extend(seed_corpus().into_iter().map(|(_, b)| b));

    let iterations = env_u64("GEOMESH_FUZZ_ITERATIONS", 300_000);
    let mut rng = Rng(env_u64("GEOMESH_FUZZ_SEED", 0x6f63_746f));
    let mut input = Vec::new();
    for i in 0..iterations {
        input.clear();
        if i % 4 == 0 {
            let len = rng.below(160);
            input.extend((0..len).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, &mut input, other);
        }
        octo_wire(&input);
    }
}
