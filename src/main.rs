//! The `stead` command: serve, import, token.

mod cli;

use clap::Parser;
use std::process::ExitCode;

// mimalloc rather than glibc malloc: the token path allocates and frees
// many small buffers per request across threads (request, claims, response,
// audit record), where glibc's allocator took ~8% of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
