//! `tollgate`: one binary that wires the stages together.

#[macro_use]
mod say;

mod alerts_cmd;
mod cli;
mod config;
mod demo;
mod dlq_cmd;
mod emit_cmd;
mod events_cmd;
mod fixtures_cmd;
mod gateway_cmd;
mod ledger_cmd;
mod pii_cmd;
mod progress;
mod queries_cmd;
mod report_cmd;
mod run_cmd;
mod status_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.clone();
    let load = || config::Config::load(config_path.as_deref());
    match cli.command {
        cli::Command::Demo(args) => demo::run(load()?, args),
        cli::Command::Fixtures(cli::FixturesCommand::Generate(args)) => {
            fixtures_cmd::generate(load()?, args)
        }
        cli::Command::Events(cli::EventsCommand::Validate(args)) => {
            events_cmd::validate(load()?, args)
        }
        cli::Command::Config(cli::ConfigCommand::Check) => {
            let loaded = load()?;
            let c = &loaded.config;
            println!(
                "configuration OK ({}): {} team(s), {} GPU rate(s), {} token rate(s), {} tool fee(s), currency {}, {}",
                loaded.path.as_ref().map_or("defaults and environment only".to_string(), |p| p.display().to_string()),
                c.teams.len(),
                c.pricing.gpu.len(),
                c.pricing.tokens.len(),
                c.pricing.tools.len(),
                c.pricing.currency,
                if c.alerts.smtp.is_some() { "emails over SMTP" } else { "emails to the outbox folder" },
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Pii(args) => pii_cmd::run(load()?, args),
        cli::Command::Verify(args) => verify_cmd::run(load()?, args),
        cli::Command::Run(args) => run_cmd::run(load()?, args),
        cli::Command::Status(args) => status_cmd::run(load()?, args),
        cli::Command::Emit(args) => emit_cmd::run(load()?, args),
        cli::Command::Gateway(args) => gateway_cmd::run(load()?, args),
        cli::Command::Dlq(cli::DlqCommand::Replay(args)) => dlq_cmd::replay(load()?, args),
        cli::Command::Report(cmd) => report_cmd::run(load()?, cmd),
        cli::Command::Serve(args) => queries_cmd::serve(load()?, args),
        cli::Command::Sql(args) => queries_cmd::sql(load()?, args),
        cli::Command::Apikey(cmd) => queries_cmd::apikey(load()?, cmd),
        cli::Command::Ledger(cmd) => ledger_cmd::run(load()?, cmd),
        cli::Command::Alerts(cmd) => alerts_cmd::run(load()?, cmd),
        cli::Command::Quota(cli::QuotaCommand::Check(args)) => {
            alerts_cmd::quota_check(load()?, args)
        }
        cli::Command::Config(cli::ConfigCommand::Show) => {
            print!("{}", load()?.config.to_redacted_toml()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The async runtime of the long-running and ledger commands: two workers
/// (the machine size this is built for), timers and I/O. Queries are planned
/// and run on its threads: their stacks are larger than tokio's default, on
/// top of DataFusion's own stack growth in its recursive walks.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
}

fn init_tracing(format: cli::LogFormat, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    say::set_json(matches!(format, cli::LogFormat::Json));
    match format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
}
