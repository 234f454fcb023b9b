use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use elements_config::{Cli, Config, LogFormat};
use elements_runtime::{Runtime, serve};

fn main() -> std::process::ExitCode {
    // `elements check ...` runs the deploy checks offline instead of serving.
    if std::env::args_os().nth(1).is_some_and(|a| a == "check") {
        let args: Vec<String> = std::env::args_os()
            .skip(2)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return elements_runtime::check::main(&args);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain; no backtrace for operators.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(&cli)?;
    init_tracing(&config)?;
    // Bind first, so the public URLs can name the real ports when the
    // configuration asked for port 0.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("listening on {} (the admin listener)", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    config.listen = addr;
    config.admin_listen = admin_addr;
    config.connections.max_connections =
        elements_server::connections::fit_to_descriptor_limit(config.connections.max_connections);
    let runtime = Runtime::start(&config).await?;
    // Both listeners stop on the one signal.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    // The admin line first: whoever waits for the public one (tests,
    // scripts) then finds both.
    tracing::info!(%admin_addr, "management portal and admin API on http://{admin_addr}/admin/");
    tracing::info!(%addr, "listening on http://{addr}");
    tokio::try_join!(
        serve(
            listener,
            runtime.public_service(),
            &config.connections,
            until_stopped(stopped.clone())
        ),
        serve(
            admin_listener,
            runtime.admin_router(),
            &config.connections,
            until_stopped(stopped)
        ),
    )?;
    tracing::info!("stopped");
    Ok(())
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(&config.log).with_context(|| format!("invalid log filter {:?}", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
