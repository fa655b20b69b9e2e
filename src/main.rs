//! The `manage` binary: command-line parsing, exit codes, nothing else.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use fluxpy::cmd;

/// Load gridded carbon-flux matrices (MATLAB v4/v5/v7.3, HDF5, NetCDF) into
/// MongoDB or an embedded store, and manage what was loaded.
#[derive(Debug, Parser)]
#[command(
    name = "manage",
    version,
    propagate_version = true,
    after_help = "\
Where to store: --db or FLUXPY_DB. A mongodb:// URI selects MongoDB (database
`fluxvis` unless the URI names one); anything else is the path of the embedded
store file, by default $XDG_DATA_HOME/fluxpy/fluxvis.db (~/.local/share/...).

Input formats (told apart by content; a directory is searched for these names):
{INPUT_FORMATS}

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
    Copy(cmd::copy::Args),
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
    /// Write the manual pages (roff): manage.1 to stdout, or with --dir
    /// one page per command (manage.1, manage-load.1, ...)
    #[command(after_help = "\
Install:  manage man --dir ~/.local/share/man/man1   then: man manage, man manage-load")]
    Man {
        /// Write manage.1 and a page per command (manage-load.1, ...) into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

impl Command {
    /// Whether the command writes under locks, and so ends on SIGINT or
    /// SIGTERM through its error path, undoing what is unfinished and
    /// releasing its locks. No wildcard: a new command must say.
    fn catches_signals(&self) -> bool {
        match self {
            Command::Load(_) | Command::Remove(_) | Command::Rename(_) | Command::Copy(_) => true,
            Command::Info(_)
            | Command::Db(_)
            | Command::Export(_)
            | Command::Plot(_)
            | Command::Models
            | Command::Completions { .. }
            | Command::Man { .. } => false,
        }
    }
}

/// The command line, with `load --help` carrying the models table built
/// from the models' own definitions.
/// The input formats in the help texts come from the table of formats.
fn command() -> clap::Command {
    use fluxpy::source::formats;
    let top = Cli::command();
    let listed: Vec<String> = formats::formats_lines()
        .iter()
        .map(|l| format!("  {l}"))
        .collect();
    let after = top
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default()
        .replace("{INPUT_FORMATS}", &listed.join("\n"));
    top.after_help(after)
        .mut_subcommand("load", |c| {
            let after = c
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            c.after_help(cmd::load::after_help(&after))
                .mut_arg("paths", |a| {
                    a.help(format!(
                        "{}; several after one -p, or -p repeated",
                        formats::paths_help()
                    ))
                })
        })
        .mut_subcommand("info", |c| {
            c.mut_arg("paths", |a| a.help(formats::paths_help()))
        })
}

/// The manual page of `cmd` named `name` (`manage`, `manage-load`):
/// clap_mangen's sections, then the input formats and the other pages.
fn man_page(cmd: &clap::Command, name: &str) -> Vec<u8> {
    let name_static: &'static str = Box::leak(name.to_string().into_boxed_str());
    let cmd = cmd.clone().name(name_static);
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let roff = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let r = (|| -> std::io::Result<()> {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut out)?;
        }
        if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
            man.render_extra_section(&mut out)?;
        }
        let mut extra = String::from(".SH \"INPUT FORMATS\"\n");
        for line in fluxpy::source::formats::formats_lines() {
            extra.push_str(&format!("{}\n.br\n", roff(&line)));
        }
        extra.push_str(&roff(
            "Files are told apart by their content, not their names; a directory given to load \
             -p or info is searched for files of these extensions.",
        ));
        extra.push('\n');
        let mut pages: Vec<String> = std::iter::once("manage".to_string())
            .chain(
                command()
                    .get_subcommands()
                    .map(|s| format!("manage-{}", s.get_name())),
            )
            .filter(|p| p != name)
            .map(|p| format!("\\fB{}\\fR(1)", roff(&p)))
            .collect();
        pages.sort();
        extra.push_str(&format!(".SH \"SEE ALSO\"\n{}\n", pages.join(", ")));
        std::io::Write::write_all(&mut out, extra.as_bytes())?;
        man.render_version_section(&mut out)?;
        Ok(())
    })();
    r.expect("writing to memory");
    out
}

/// `manage man --dir DIR`: manage.1 and manage-COMMAND.1 for each command.
fn write_man_pages(dir: &std::path::Path) -> fluxpy::error::Result<()> {
    let io = |path: &std::path::Path, e| fluxpy::error::Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut top = command();
    // Built, so that each command carries the global --db.
    top.build();
    let mut pages = vec![("manage".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        pages.push((format!("manage-{}", sub.get_name()), sub.clone()));
    }
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let bytes = man_page(&cmd, &name);
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        println!("{}", path.display());
    }
    Ok(())
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
    if cli.command.catches_signals() {
        if let Err(e) = fluxpy::interrupt::catch() {
            eprintln!("manage: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Those that write only their own temporary files remove them and end.
    let temporary_only = match &cli.command {
        Command::Export(a) => a.output.is_some(),
        Command::Info(_) => true,
        _ => false,
    };
    if temporary_only {
        if let Err(e) = fluxpy::interrupt::end_on_signal() {
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
        Command::Copy(a) => cmd::copy::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Plot(a) => cmd::plot::run(db, a).map(|_| ExitCode::SUCCESS),
        Command::Models => {
            print_models();
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut command(), "manage", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir: None } => {
            let out = man_page(&command(), "manage");
            std::io::Write::write_all(&mut std::io::stdout(), &out)
                .map(|_| ExitCode::SUCCESS)
                .map_err(cmd::write_error)
        }
        Command::Man { dir: Some(dir) } => write_man_pages(dir).map(|_| ExitCode::SUCCESS),
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(fluxpy::error::Error::Interrupted { signal })) => {
            eprintln!(
                "manage: interrupted: {} received; the unfinished work was undone and its locks released",
                fluxpy::error::signal_name(signal)
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
