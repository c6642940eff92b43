//! `hearth-server`: runs the server, or manages accounts with `user ...`.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_server::config::{self, Sources};
use hearth_server::{Accounts, Secret};

#[derive(Debug, Parser)]
#[command(name = "hearth-server", version, about = "Hearth chat and call server")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Directory of the database and the generated TLS certificate
    /// [env: HEARTH_DATA_DIR].
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, such as 0.0.0.0:7443 [env: HEARTH_LISTEN]
    /// [default: 127.0.0.1:7443].
    #[arg(long, value_name = "ADDR:PORT", global = true)]
    listen: Option<String>,
    /// Largest attachment upload in bytes [env: HEARTH_MAX_ATTACHMENT_BYTES]
    /// [default: 26214400, which is 25 MiB].
    #[arg(long, value_name = "BYTES", global = true)]
    max_attachment_bytes: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account. Prompts for the password twice on a terminal.
    Add {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account and revoke its tokens.
    Disable { name: String },
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let sources = Sources {
        file: cli.config,
        flag_data_dir: cli.data_dir,
        flag_listen: cli.listen,
        flag_max_attachment_bytes: cli.max_attachment_bytes,
        ..Sources::default()
    }
    .with_process_env();
    let config = config::resolve(&sources)?;

    match cli.command {
        None => serve(config).await,
        Some(Command::User(command)) => {
            let accounts = Accounts::open(&config.data_dir).await?;
            run_user_command(&accounts, command).await
        }
    }
}

async fn serve(config: hearth_server::Config) -> anyhow::Result<()> {
    let server = hearth_server::start(config).await?;
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("failed to listen for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    Ok(())
}

async fn run_user_command(accounts: &Accounts, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            password_stdin,
        } => {
            hearth_server::accounts::validate_name(&name)?;
            let password = read_password(password_stdin)?;
            accounts.add_user(&name, &password).await?;
            println!("created user {name}");
        }
        UserCommand::List => {
            for user in accounts.list_users().await? {
                let status = if user.disabled { "disabled" } else { "active" };
                println!("{}\t{status}", user.name);
            }
        }
        UserCommand::Disable { name } => {
            accounts.disable_user(&name).await?;
            println!("disabled user {name} and revoked its tokens");
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("failed to read the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']);
        return Ok(Secret::new(password));
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "stdin is not a terminal; pass --password-stdin to read the password from stdin"
        );
    }
    let first = Secret::new(
        rpassword::prompt_password("Password: ").context("failed to read the password")?,
    );
    let second = Secret::new(
        rpassword::prompt_password("Repeat password: ").context("failed to read the password")?,
    );
    if first != second {
        anyhow::bail!("the passwords do not match; run the command again");
    }
    Ok(first)
}
