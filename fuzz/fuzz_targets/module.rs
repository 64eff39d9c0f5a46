//! Module validation: arbitrary bytes handed to `Executor::load`, which tells core modules from
//! components by their header, compiles them with Cranelift, checks for a WASI command entry
//! point and links them against the host's WASI. Checks that nothing panics and that every
//! refusal is a `LoadError` with a message.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wasmbatch_fuzz::Loader;

static LOADER: LazyLock<Loader> = LazyLock::new(Loader::new);

fuzz_target!(|bytes: &[u8]| {
    let _ = LOADER.load(bytes);
});
