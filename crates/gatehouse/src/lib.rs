//! gatehouse as a library: the server command (`serve`) and the CLI (`login`, `token`,
//! `kubeconfig`, `whoami`, `logout`, `doctor`, `completion`; see [`cli`]), so the commands'
//! logic is tested without spawning the binary. The binary (`main.rs`) only parses and calls
//! [`Cli::run`], or [`cli::TokenCli::run`] on `gatehouse token`'s fast path.

use std::path::PathBuf;
use std::process::ExitCode;

pub mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use gatehouse_server::{app, config, routes, serve};

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "Identity-aware front door for Kubernetes",
    long_about = "gatehouse signs people in with their organisation's OpenID Connect provider and proxies their Kubernetes API requests as the ServiceAccount their claims map to, or with their own token when the cluster trusts it."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Client(cli::Command),
    /// Run the server.
    #[command(
        after_help = "Examples:\n  gatehouse serve --config /etc/gatehouse/config.yaml\n  gatehouse serve --check-config --config config.yaml"
    )]
    Serve {
        /// The YAML configuration file.
        #[arg(long, short = 'c', env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Validate the configuration and exit: every problem is listed on stderr (exit 2);
        /// a valid configuration is printed as JSON on stdout, secrets left out.
        #[arg(long)]
        check_config: bool,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Json, env = "GATEHOUSE_LOG_FORMAT")]
        log_format: LogFormat,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

impl Cli {
    /// Runs the command parsed from the command line.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Client(command) => cli::run(command),
            Command::Serve {
                config,
                check_config,
                log_format,
            } => {
                // The server's TLS (listener, kube client, IdP fetches); the CLI installs it when it
                // builds a network client.
                cli::install_crypto_provider();
                let cfg = match config::load(config.as_deref(), &config::ProcessEnv) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("gatehouse: {e}");
                        return ExitCode::from(2);
                    }
                };
                if check_config {
                    // The effective configuration, secrets left out, for people and scripts.
                    #[allow(clippy::print_stdout)]
                    {
                        println!("{:#}", cfg.describe());
                    }
                    eprintln!("gatehouse: configuration is valid");
                    return ExitCode::SUCCESS;
                }
                init_logging(log_format);
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("gatehouse: cannot start the async runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                match runtime.block_on(serve_with(cfg)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "gatehouse stopped");
                        eprintln!("gatehouse: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

async fn serve_with(cfg: config::Config) -> anyhow::Result<()> {
    let tls = cfg.tls.as_ref().map(serve::tls_acceptor).transpose()?;
    let listener = serve::bind(&cfg).await?;
    let max_header_bytes = cfg.limits.max_header_bytes;
    let addr = listener.local_addr()?;
    let app = app::App::start(cfg).await?;
    tracing::info!(%addr, tls = tls.is_some(), "gatehouse listening");
    serve::serve(
        listener,
        tls,
        routes::router(app),
        max_header_bytes,
        serve::shutdown_signal(),
    )
    .await;
    Ok(())
}
