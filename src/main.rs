//! The `stead` command: serve, import, token.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than the system allocator: the token path allocates
/// many short-lived strings and buffers, and glibc's malloc and free (with
/// its fastbin consolidation) took ~8 % of the server's CPU in the profile.
/// Measured side by side (BENCHMARKS.md): +5 % tokens/s with 1k users,
/// +8 % with 1M, the same RSS. Transparent huge pages are off (`no_thp`):
/// with them the idle server's RSS nearly doubled (17 → 30 MB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stead: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// With one CPU to run on (a one-CPU container, or `taskset` to one core)
/// a work-stealing pool has no one to steal from: a current-thread runtime
/// serves the same tasks without its queues' synchronisation. With more
/// CPUs, one worker per CPU.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // tokio's own setting of the worker count still applies when given.
    let mut builder = if cpus == 1 && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
