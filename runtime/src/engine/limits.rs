//! The per-attempt memory cap: a wasmtime `ResourceLimiter` that plays the part of a container's
//! memory limit. Growth past the cap traps at once, as an out-of-memory kill would, and the
//! refusal is remembered so the outcome can say which limit was hit and by how much.

use wasmtime::ResourceLimiter;

/// What the limiter refused, kept for the attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Linear memory would have grown to `requested` bytes in all, past `cap`.
    Memory { cap: u64, requested: u64 },
    /// A table would have grown to `requested` elements, past `cap`.
    Table { cap: usize, requested: usize },
}

/// The error a refused growth traps with; the executor turns it into a memory-limit failure.
#[derive(Debug, thiserror::Error)]
#[error("resource limit exceeded")]
pub(crate) struct LimitExceeded;

/// Counts the linear memory of every instance in one attempt's store against one cap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_cap: u64,
    table_elements_cap: usize,
    /// Sum of the current sizes of all linear memories; memories never shrink, so this only grows
    /// and is also the attempt's peak.
    memory_in_use: u64,
    refused: Option<Refusal>,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_cap: u64, table_elements_cap: usize) -> Self {
        Self {
            memory_cap,
            table_elements_cap,
            memory_in_use: 0,
            refused: None,
        }
    }

    /// Highest total linear memory the attempt reached, in bytes.
    pub(crate) fn peak_memory(&self) -> u64 {
        self.memory_in_use
    }

    pub(crate) fn refusal(&self) -> Option<Refusal> {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the module's own declared maximum the growth fails by itself (memory.grow
        // returns -1, as the spec says); that is the guest's limit, not ours.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let requested = self.memory_in_use + (desired - current) as u64;
        if requested > self.memory_cap {
            self.refused = Some(Refusal::Memory {
                cap: self.memory_cap,
                requested,
            });
            return Err(wasmtime::Error::new(LimitExceeded));
        }
        self.memory_in_use = requested;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Our cap first: the pool gives every table a maximum no larger than the cap, and a
        // growth past it should stop the attempt as memory growth does, not quietly fail.
        if desired > self.table_elements_cap {
            self.refused = Some(Refusal::Table {
                cap: self.table_elements_cap,
                requested: desired,
            });
            return Err(wasmtime::Error::new(LimitExceeded));
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 64 * 1024;

    #[test]
    fn counts_all_memories_against_one_cap() {
        let mut limiter = MemoryLimiter::new(4 * PAGE as u64, 100);
        assert!(limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(limiter.memory_growing(0, PAGE, None).unwrap());
        assert_eq!(limiter.peak_memory(), 3 * PAGE as u64);
        // A second memory growing by two more pages would make five in all.
        assert!(limiter.memory_growing(PAGE, 3 * PAGE, None).is_err());
        assert_eq!(
            limiter.refusal(),
            Some(Refusal::Memory {
                cap: 4 * PAGE as u64,
                requested: 5 * PAGE as u64
            })
        );
        assert_eq!(limiter.peak_memory(), 3 * PAGE as u64);
    }

    #[test]
    fn growth_past_the_modules_own_maximum_fails_quietly() {
        let mut limiter = MemoryLimiter::new(100 * PAGE as u64, 100);
        assert!(
            !limiter
                .memory_growing(PAGE, 3 * PAGE, Some(2 * PAGE))
                .unwrap()
        );
        assert_eq!(limiter.refusal(), None);
        assert_eq!(limiter.peak_memory(), 0);
    }

    #[test]
    fn tables_have_their_own_cap() {
        let mut limiter = MemoryLimiter::new(PAGE as u64, 10);
        assert!(limiter.table_growing(0, 10, None).unwrap());
        // Within the cap, a table's own maximum makes growth fail quietly (-1), as the spec says.
        assert!(!limiter.table_growing(4, 6, Some(5)).unwrap());
        assert_eq!(limiter.refusal(), None);
        // Past the cap it stops the attempt, even when the pool set the same maximum.
        assert!(limiter.table_growing(10, 11, Some(10)).is_err());
        assert_eq!(
            limiter.refusal(),
            Some(Refusal::Table {
                cap: 10,
                requested: 11
            })
        );
    }
}
