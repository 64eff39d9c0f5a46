//! The epoch ticker: one thread per engine that advances wasmtime's epoch every tick, which is
//! what lets a spinning guest be interrupted, yield to other tasks, and meet its deadline.

use std::time::Duration;

use wasmtime::Engine;

/// Starts the ticker. It holds only a weak handle, so it ends by itself once the engine (and
/// every module compiled by it) is gone.
pub(crate) fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmbatch-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}
