//! The `costsplit` binary: a thin shell over the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = costsplit::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COSTSPLIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx::query=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(costsplit::cli::run(cli)) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let e = costsplit::store::explain_busy(e);
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
