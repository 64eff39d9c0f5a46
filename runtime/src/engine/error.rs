//! The engine layer's errors: building an executor, and loading a module.

use super::module_cache::Digest;

/// Why an [`Executor`](super::Executor) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// A configuration field has a value the executor cannot work with.
    #[error("invalid executor configuration: `{field}` {problem}")]
    InvalidConfig {
        /// The field of [`ExecutorConfig`](super::ExecutorConfig).
        field: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// wasmtime refused the engine configuration (for example, the pool could not reserve
    /// its address space).
    #[error("could not create the wasmtime engine: {0}")]
    Engine(String),
    /// The data directory (scratch space, compiled modules) could not be prepared.
    #[error("could not prepare {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a module could not be loaded. Each names the module by its digest.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes do not start with the WebAssembly magic number and a known version.
    #[error(
        "module {digest} is not WebAssembly: expected a core module or a component \
         (`\\0asm` header), found {found}"
    )]
    NotWasm {
        /// The module.
        digest: Digest,
        /// What the first bytes were instead.
        found: String,
    },
    /// The bytes are WebAssembly but do not validate or compile.
    #[error("module {digest} is invalid: {reason}")]
    Invalid {
        /// The module.
        digest: Digest,
        /// The validator's message, with its offset.
        reason: String,
    },
    /// The module defines more functions than the executor compiles
    /// ([`ExecutorConfig::max_module_functions`](super::ExecutorConfig::max_module_functions)).
    #[error(
        "module {digest} defines {functions} functions; the limit is {limit} \
         (max_module_functions), so it was not compiled"
    )]
    TooManyFunctions {
        /// The module.
        digest: Digest,
        /// Functions it defines.
        functions: u64,
        /// The executor's limit.
        limit: u32,
    },
    /// Compiling the module took longer than the executor allows
    /// ([`ExecutorConfig::max_compile_time`](super::ExecutorConfig::max_compile_time)).
    #[error(
        "module {digest} was still compiling after {}s, the limit (max_compile_time); \
         compilation was abandoned",
        limit.as_secs_f64()
    )]
    CompileTimeLimit {
        /// The module.
        digest: Digest,
        /// The executor's limit.
        limit: std::time::Duration,
    },
    /// The module is valid but not a WASI command (no `_start`, or no `wasi:cli/run`).
    #[error("module {digest} is not a WASI command: {reason}")]
    NotCommand {
        /// The module.
        digest: Digest,
        /// What is missing.
        reason: String,
    },
    /// The module imports something the host does not provide.
    #[error("module {digest} cannot be linked: {reason}")]
    Link {
        /// The module.
        digest: Digest,
        /// The linker's message, naming the import.
        reason: String,
    },
    /// The compile task itself failed (it panicked or was cancelled).
    #[error("compiling module {digest} failed unexpectedly: {reason}")]
    Internal {
        /// The module.
        digest: Digest,
        /// What happened.
        reason: String,
    },
}
