//! The `costsplit` binary: a thin shell over the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`costsplit export ... | head`): Rust ignores SIGPIPE, so every later print would
    // panic on EPIPE instead.
    // SAFETY: called first thing, before any thread exists; it only restores the default
    // disposition of one signal.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic inside a guarded reader (a third-party decoder on a damaged parquet file) becomes the import's
    // `error:` line; only other panics are printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !costsplit::ingest::in_guarded_read() {
            default_hook(info);
        }
    }));
    let cli = match costsplit::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A value that does not parse (a day, a month, a cost basis) is a failed command like
        // any other: one `error:` line, exit code 1. Usage errors and --help stay clap's.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let rendered = e.to_string();
            eprintln!(
                "{}",
                rendered.lines().next().unwrap_or("error: invalid value")
            );
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => e.exit(),
    };
    // `costsplit run` logs what it does; one-off commands only what went wrong.
    let default_filter = match cli.command {
        costsplit::cli::Command::Run => "info,sqlx::query=error",
        _ => "warn,sqlx::query=error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COSTSPLIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("COSTSPLIT_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    // A clear error before memory runs out, never the OOM killer.
    match costsplit::memory::limit() {
        Ok(Some(limit)) => costsplit::memory::watch(limit),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if let Err(e) = threads_can_start() {
        eprintln!(
            "error: cannot start worker threads ({e}): the process has too little memory (a memory limit of a few MB?); give it at least 64 MB"
        );
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(costsplit::cli::run(cli));
    // A job abandoned at shutdown may still be reading a file on a blocking thread; nothing
    // of it is committed, so the process does not wait for it (a pod has its grace period,
    // not more).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let e = costsplit::store::explain_busy(e);
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts (and ends) as many threads as the async runtime will, with its stack size. Under a
/// memory limit too small for their stacks the runtime panics while starting and then never
/// exits; this turns that into one line and an exit code.
fn threads_can_start() -> std::io::Result<()> {
    const RUNTIME_STACK: usize = 2 << 20;
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = (0..workers)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(RUNTIME_STACK)
                .spawn(|| ())
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
