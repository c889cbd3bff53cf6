//! The binary edge: flags, logging, exit codes. The work is in the library.

mod cli;
mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat, PolicyCommand};
use stsmend::error::EXIT_FAILURE;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions(args) = &cli.command {
        use clap::CommandFactory as _;
        use std::io::Write as _;
        // Rendered to memory first: clap_complete panics on a write error,
        // and `stsmend completions bash | head` closes the pipe early.
        let mut script = Vec::new();
        clap_complete::generate(args.shell, &mut Cli::command(), "stsmend", &mut script);
        return match std::io::stdout().write_all(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stsmend: writing the completion script: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stsmend: starting the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("stsmend: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("stsmend=info"));
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> stsmend::Result<u8> {
    match cli.command {
        Command::Plan(args) => cmd::plan::plan(args).await,
        Command::Preflight(args) => cmd::preflight::preflight(args).await,
        Command::Snapshot(args) => cmd::snapshot::take_snapshot(args).await,
        Command::Explain(args) => cmd::plan::explain(args).await,
        Command::Policy(PolicyCommand::Test(args)) => cmd::policy_test::policy_test(args),
        Command::Run(args) => cmd::run::run_once(args).await,
        Command::Undo(args) => cmd::undo::undo(args).await,
        // Answered in main, before logging and the runtime start.
        Command::Completions(_) => Ok(0),
    }
}
