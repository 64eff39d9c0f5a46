//! Shared pieces of wasmbatch's end-to-end tests and benchmarks.
//!
//! The tests themselves live in `tests/` (one file per concern); this library only exposes the
//! guest examples that `build.rs` compiles from `../guest-examples`.

/// Paths of the guest examples, built for each target by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// Reads a guest's bytes, with a message naming the file if that fails.
    pub fn bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
    }
}
