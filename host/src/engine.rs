//! The wasmtime [`Engine`] every Element is compiled and run with, and the
//! epoch ticker that bounds how long guest code runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config as WasmConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use elements_config::{Config, MAX_MEMORY_BYTES, Pooling};

/// How often the epoch advances. A running guest yields to the executor at
/// every tick and traps at the first tick past its deadline, so this is both
/// the scheduling quantum of busy guests and the precision of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Instances come from pre-reserved slots.
    Pooling,
    /// Instances are allocated when needed.
    OnDemand,
}

/// Builds the engine. With [`Pooling::Auto`], a pooling engine is tried first
/// and, if its address space can't be reserved, an on-demand engine is used
/// instead, with a warning.
pub fn build(config: &Config) -> anyhow::Result<(Engine, Allocation)> {
    match config.pooling {
        Pooling::Off => Ok((Engine::new(&base_config())?, Allocation::OnDemand)),
        Pooling::On => {
            let engine = pooling_engine(config.max_instances).map_err(|e| {
                anyhow::anyhow!(
                    "the pooling instance allocator could not reserve its address space \
                     (use --pooling auto, or a smaller --max-instances): {e:#}"
                )
            })?;
            Ok((engine, Allocation::Pooling))
        }
        Pooling::Auto => match pooling_engine(config.max_instances) {
            Ok(engine) => Ok((engine, Allocation::Pooling)),
            Err(err) => {
                tracing::warn!(
                    error = %format!("{err:#}"),
                    "the pooling instance allocator is unavailable (address space could not be \
                     reserved); falling back to on-demand allocation, which is slower per request"
                );
                Ok((Engine::new(&base_config())?, Allocation::OnDemand))
            }
        },
    }
}

fn base_config() -> WasmConfig {
    let mut config = WasmConfig::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A guest that recurses too deeply traps instead of overflowing the host stack.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    // One thread per compile: deploys compile side by side (at most
    // `max_compiles`, each on its own blocking thread) instead of queueing
    // in one shared thread pool, where a huge component's thousands of
    // functions would hold up every other Element's deploy. This also
    // bounds the compiler's CPU and memory to `max_compiles` functions
    // at a time.
    config.parallel_compilation(false);
    // For profiling: `perf` then names the guests' functions (wasmtime
    // writes /tmp/perf-PID.map as it compiles).
    if std::env::var_os("ELEMENTS_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

fn pooling_engine(max_instances: u32) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    // One component instance holds a few core instances (the guest plus
    // adapter shims), each with at most a couple of memories and tables.
    pool.total_component_instances(max_instances);
    pool.total_core_instances(max_instances * 4);
    pool.total_memories(max_instances * 2);
    pool.total_tables(max_instances * 4);
    pool.total_stacks(max_instances);
    pool.max_memory_size(MAX_MEMORY_BYTES as usize);
    pool.max_core_instances_per_component(16);
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(16);
    // Resetting a slot for the next instance is the biggest per-request cost
    // of fresh instances (measured: TLB shootdowns from `madvise` and memset
    // were a third of the time). Where the kernel has PAGEMAP_SCAN (Linux 6.7+)
    // only the pages a guest dirtied are reset, in place, so a slot's memory
    // can stay resident; elsewhere keep a little resident and `madvise` the rest.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes);
        pool.linear_memory_keep_resident(8 << 20);
        pool.table_keep_resident(1 << 20);
    } else {
        pool.linear_memory_keep_resident(64 << 10);
        pool.table_keep_resident(64 << 10);
    }
    // Batch what still has to be decommitted, to share TLB flushes.
    pool.decommit_batch_size(16);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Creating the engine reserves the pool's address space: this is the probe.
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a dedicated OS thread,
/// so the deadline clock keeps ticking however busy the async executor is.
/// Dropping the ticker stops the thread.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
