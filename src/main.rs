//! The `stead` command: serve, import, token.

mod cli;

use clap::Parser;
use std::process::ExitCode;

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
