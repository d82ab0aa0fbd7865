//! The `daiban` command: `serve` runs the service; `token`, `replay`,
//! `export-bonus` and `close-quarter` are tools around it.

mod client;
mod export;
mod replay;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use daiban_domain::AgentId;
use daiban_server::config::ConfigError;
use daiban_server::{DirectorySource, Service, Settings, load_directory};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the service allocates for
/// every call and message, and under intake load glibc's malloc took
/// about a quarter of the service's CPU time, much of it in waking
/// threads that waited on its locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "daiban",
    version,
    about = "Grab-order dispatch for a county's \"we handle it for you\" service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service. Settings come from DAIBAN_* environment variables.
    Serve,
    /// Mint credentials.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Play a requests file against a running service, with simulated
    /// agents who grab, complete and rate orders.
    Replay(replay::ReplayArgs),
    /// Write a county's bonus statement for a quarter to a CSV or XLSX
    /// file. Exit codes: 0 done, 2 invalid command line, 3 request
    /// rejected, 4 credential rejected, 5 service unavailable (retry), 6
    /// output not writable, 1 anything else.
    ExportBonus(export::ExportArgs),
    /// Close a quarter that has ended and freeze its bonus statement. Exit
    /// codes as for export-bonus.
    CloseQuarter(export::CloseArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a bearer token for an agent, signed with DAIBAN_TOKEN_SECRET
    /// (or the development secret when it is unset).
    Agent(AgentTokenArgs),
}

#[derive(Args)]
struct AgentTokenArgs {
    /// The agent's id, as in the directory, such as A0001.
    agent_id: String,
    /// How long the token stays valid, such as 12h or 30d.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the cause chain on one line; a backtrace would
            // only bury a configuration mistake.
            eprintln!("error: {err:#}");
            ExitCode::from(export::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve => {
            // Both are read before either is reported, so one start lists
            // every invalid variable.
            let format = log_format();
            let settings = Settings::from_env();
            let (json, settings) = match (format, settings) {
                (Ok(json), Ok(settings)) => (json, settings),
                (format, settings) => {
                    let mut errors: Vec<String> = format.err().into_iter().collect();
                    if let Err(ConfigError(more)) = settings {
                        errors.extend(more);
                    }
                    errors.sort();
                    bail!("invalid configuration:\n{}", errors.join("\n"));
                }
            };
            init_logging(json);
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
            runtime.block_on(serve(settings))
        }
        Command::Token(TokenCommand::Agent(args)) => print_agent_token(&args),
        Command::Replay(args) => {
            init_logging(log_format().map_err(anyhow::Error::msg)?);
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
            runtime.block_on(replay::run(args))
        }
        Command::ExportBonus(args) => client_runtime()?.block_on(export::run_export(args)),
        Command::CloseQuarter(args) => client_runtime()?.block_on(export::run_close(args)),
    }
}

/// A runtime for a client command, which logs nothing of its own.
fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("failed to start the tokio runtime")
}

/// Returns whether to log JSON lines: off a terminal, unless
/// `DAIBAN_LOG_FORMAT` says `text` or `json`.
fn log_format() -> Result<bool, String> {
    match std::env::var("DAIBAN_LOG_FORMAT")
        .unwrap_or_default()
        .trim()
    {
        "" | "auto" => Ok(!std::io::stdout().is_terminal()),
        "json" => Ok(true),
        "text" => Ok(false),
        other => Err(format!(
            "DAIBAN_LOG_FORMAT: expected auto, text or json, got {other:?}"
        )),
    }
}

/// Sets up logging, as JSON lines when `json`, else as text.
fn init_logging(json: bool) {
    let terminal = std::io::stdout().is_terminal();
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(err) => {
            if std::env::var_os("RUST_LOG").is_some() {
                eprintln!("warning: RUST_LOG is invalid ({err}); logging at info");
            }
            EnvFilter::new("info")
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        // Colours only on a terminal, so log files hold plain text.
        builder.with_ansi(terminal).init();
    }
}

async fn serve(settings: Settings) -> Result<()> {
    let service = Service::bind(&settings).await?;
    service.run(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn print_agent_token(args: &AgentTokenArgs) -> Result<()> {
    let agent_id =
        AgentId::parse(&args.agent_id).map_err(|err| anyhow::anyhow!("agent id: {err}"))?;
    // Only the directory and the secret matter here, so a client machine
    // needs neither API keys nor the service's other settings.
    let source = match std::env::var("DAIBAN_DIRECTORY") {
        Ok(path) if !path.trim().is_empty() => DirectorySource::Folder(path.trim().into()),
        _ => DirectorySource::Bundled,
    };
    let directory = load_directory(&source)?;
    let Some(agent) = directory.agent(&agent_id) else {
        bail!("agent {agent_id} is not in the directory; `daiban serve` would reject its token");
    };
    if !agent.active {
        eprintln!("warning: agent {agent_id} is inactive; the service rejects its calls");
    }
    let signer = client::token_signer();
    if signer.is_development() {
        eprintln!(
            "note: DAIBAN_TOKEN_SECRET is unset, so this token is signed with the development secret"
        );
    }
    println!("{}", signer.mint(&agent_id, args.ttl));
    Ok(())
}
