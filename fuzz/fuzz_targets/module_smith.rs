//! Module validation on modules that are valid by construction (wasm-smith), so the fuzzer
//! spends its time in compilation and linking rather than in the parser's first bytes. Imports
//! are drawn from the WASI preview-1 functions the host provides, and a `_start` is always
//! exported, so some modules link and some are refused by the linker for a wrong signature.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wasmbatch_fuzz::Loader;

static LOADER: LazyLock<Loader> = LazyLock::new(Loader::new);

/// The module the imports may come from: a few of WASI preview 1's functions, with their
/// real signatures.
const AVAILABLE_IMPORTS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32))))
"#;

/// What every module must export: the entry point of a WASI command.
const REQUIRED_EXPORTS: &str = r#"(module (func (export "_start")))"#;

static CONFIG: LazyLock<(Vec<u8>, Vec<u8>)> = LazyLock::new(|| {
    (
        wat::parse_str(AVAILABLE_IMPORTS).expect("imports"),
        wat::parse_str(REQUIRED_EXPORTS).expect("exports"),
    )
});

fuzz_target!(|data: &[u8]| {
    let (imports, exports) = &*CONFIG;
    // Only the proposals this wasmtime build accepts, so that "valid" means the same to both.
    // It is built without the `gc` feature, which externref needs: reference types are off.
    let config = wasm_smith::Config {
        available_imports: Some(imports.clone()),
        exports: Some(exports.clone()),
        max_imports: 8,
        max_memories: 1,
        max_memory32_bytes: 64 << 20,
        max_tables: 1,
        // The executor's pool limits (64 MiB above, ExecutorConfig::max_table_elements here):
        // a module past them is refused as invalid, which is right but not what this looks for.
        max_table_elements: 100_000,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        reference_types_enabled: false,
        exceptions_enabled: false,
        compact_imports_enabled: false,
        custom_descriptors_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    };
    let mut input = Unstructured::new(data);
    let Ok(module) = wasm_smith::Module::new(config, &mut input) else {
        return;
    };
    let bytes = module.to_bytes();
    // Built to be valid: a refusal here is the linker's, ours or the pool's, never the
    // validator's.
    if let Err(message) = LOADER.load(&bytes) {
        assert!(
            !message.contains(" is invalid: ") || message.contains("pooling allocator"),
            "wasm-smith made a module wasmtime calls invalid: {message}"
        );
    }
});
