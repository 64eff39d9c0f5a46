//! The host side of a guest: the per-attempt store state (WASI context, memory limiter) and the
//! linkers that give preview-1 modules and preview-2 components their WASI imports.

use wasmtime::Engine;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;

/// What a store holds for one attempt. `W` is the WASI context of the guest's kind.
pub(crate) struct AttemptState<W> {
    pub(crate) wasi: W,
    pub(crate) limiter: MemoryLimiter,
}

/// A preview-2 guest's WASI context and the table of its resources (streams, files, …).
pub(crate) struct P2Wasi {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
}

impl WasiView for AttemptState<P2Wasi> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

pub(crate) type CoreState = AttemptState<WasiP1Ctx>;
pub(crate) type ComponentState = AttemptState<P2Wasi>;

/// Both linkers, built once per executor.
pub(crate) struct Linkers {
    pub(crate) core: wasmtime::Linker<CoreState>,
    pub(crate) component: wasmtime::component::Linker<ComponentState>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut core = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core, |state: &mut CoreState| &mut state.wasi)?;
        // wasmtime-wasi traps on a status outside 0..126 (what a shell can report); a batch
        // job's status is whatever the program chose, as a container's is.
        core.allow_shadowing(true);
        core.func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |status: i32| -> wasmtime::Result<()> { Err(wasmtime::Error::new(I32Exit(status))) },
        )?;
        core.allow_shadowing(false);
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        Ok(Self { core, component })
    }
}
