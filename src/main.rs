//! The `manage` binary: command-line parsing, exit codes, nothing else.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use fluxpy::cmd;

/// Load gridded carbon-flux matrices (MATLAB, HDF5) into MongoDB or an
/// embedded store, and manage what was loaded.
#[derive(Debug, Parser)]
#[command(
    name = "manage",
    version,
    propagate_version = true,
    after_help = "\
Where to store: --db or FLUXPY_DB. A mongodb:// URI selects MongoDB (database
`fluxvis` unless the URI names one); anything else is the path of the embedded
store file, by default $XDG_DATA_HOME/fluxpy/fluxvis.db (~/.local/share/...).

Exit codes: 0 success, 1 failure, 2 usage error, 3 `db -a` found problems,
130/143 interrupted by SIGINT/SIGTERM."
)]
struct Cli {
    /// The store: a mongodb:// URI, or the path of an embedded store file
    ///
    /// The value of FLUXPY_DB is never shown here: it may hold a password.
    #[arg(
        long,
        global = true,
        env = "FLUXPY_DB",
        hide_env_values = true,
        value_name = "URI"
    )]
    db: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Info(cmd::info::Args),
    Load(cmd::load::Args),
    Remove(cmd::remove::Args),
    Rename(cmd::rename::Args),
    Db(cmd::db::Args),
    Export(cmd::export::Args),
    Plot(cmd::plot::Args),
    /// Print each model's matrix, required keys, defaults and an example config
    /// (also `manage help models`)
    Models,
    /// Write a shell completion script to stdout
    #[command(after_help = "\
Install (bash):  manage completions bash > ~/.local/share/bash-completion/completions/manage
         (zsh):  manage completions zsh > ~/.zfunc/_manage   (with fpath+=~/.zfunc)
        (fish):  manage completions fish > ~/.config/fish/completions/manage.fish")]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual page (roff) to stdout
    #[command(after_help = "\
Install:  manage man > ~/.local/share/man/man1/manage.1   then: man manage")]
    Man,
}

/// The command line, with `load --help` carrying the models table built
/// from the models' own definitions.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("load", |c| {
        let after = c
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        c.after_help(cmd::load::after_help(&after))
    })
}

fn print_models() {
    print!("{}", fluxpy::model::models_table());
    for kind in fluxpy::model::ModelKind::ALL {
        println!(
            "\nExample config for {} (configs/{}.json):\n{}",
            kind.name(),
            kind.name(),
            kind.example_config().trim_end()
        );
    }
}

/// Whether file descriptor 1 was closed when the process started, as
/// [`note_closed_stdout`] found before the Rust runtime put `/dev/null`
/// there.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_closed_stdout() {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let closed = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFD) } == -1;
    STDOUT_CLOSED.store(closed, std::sync::atomic::Ordering::SeqCst);
}

/// Run before the Rust runtime starts (it opens `/dev/null` on a closed
/// stdout, where writes succeed and reach nobody).
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = note_closed_stdout;

fn main() -> ExitCode {
    cmd::stdout_closed_at_start(STDOUT_CLOSED.load(std::sync::atomic::Ordering::SeqCst));
    // `manage help models` is the same as `manage models`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "help" && args[2] == "models" {
        print_models();
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::from_arg_matches(&command().get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A panic is a bug; it still ends in one line and exit code 1, not a
    // backtrace (parsers of foreign formats catch their own and say why).
    fluxpy::panics::install_hook();
    let db = cli.db.as_deref();
    // The commands that write under locks end on SIGINT/SIGTERM through
    // their error path, undoing what is unfinished and releasing the locks.
    if matches!(
        cli.command,
        Command::Load(_) | Command::Remove(_) | Command::Rename(_)
    ) {
        if let Err(e) = fluxpy::interrupt::catch() {
            eprintln!("manage: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = std::panic::catch_unwind(|| match &cli.command {
        Command::Info(a) => cmd::info::run(a),
        Command::Load(a) => cmd::load::run(db, a),
        Command::Remove(a) => cmd::remove::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Rename(a) => cmd::rename::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Db(a) => cmd::db::run(db, a),
        Command::Export(a) => cmd::export::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Plot(a) => cmd::plot::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Models => {
            print_models();
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut command(), "manage", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command())
                .render(&mut out)
                .and_then(|_| std::io::Write::write_all(&mut std::io::stdout(), &out))
                .map(|_| ExitCode::SUCCESS)
                .map_err(cmd::write_error)
        }
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(fluxpy::error::Error::Interrupted { signal })) => {
            eprintln!(
                "manage: interrupted: {} received; the unfinished work was undone and its locks released",
                fluxpy::interrupt::signal_name(signal)
            );
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        Ok(Err(e)) => {
            // One line, whatever a library put in its message.
            let text = e.to_string();
            let line: Vec<&str> = text.split_whitespace().collect();
            eprintln!("manage: error: {}", line.join(" "));
            ExitCode::FAILURE
        }
        Err(_) => {
            let msg = fluxpy::panics::take_message();
            eprintln!("manage: internal error (a bug, please report it): {msg}");
            ExitCode::FAILURE
        }
    }
}
