//! Fuzzing on stable Rust (proptest) over everything a peer controls: signalling JSON and the
//! conference behind it, SDP offers, STUN and RFC 4571 framing, and the media receive path.
//!
//! Each target runs a few hundred cases inside `cargo test --release` (seconds in all).
//! `CONFAB_FUZZ_CASES=N` runs N cases per target instead: the long run, see README "Fuzzing".
//! Generators are structure-aware (valid JSON shapes with hostile values, a browser's offer
//! with mutated lines, STUN with mutated attributes) so cases get past the first check;
//! blind bytes are mixed in. A failure prints the shrunk input; a fixed crash gets a plain
//! regression test beside its target.

mod json;
mod media;
mod sdp;
mod signalling;
mod wire;

use proptest::test_runner::Config;

/// Cases per target: `default`, or `CONFAB_FUZZ_CASES` when set (the long run).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("CONFAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Regressions are kept as named tests, not in files beside the sources.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}
