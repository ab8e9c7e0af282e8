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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stead: {e:#}");
            ExitCode::FAILURE
        }
    }
}
