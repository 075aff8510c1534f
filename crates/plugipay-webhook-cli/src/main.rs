//! `plugipay-webhook`: sign, verify, send and receive Plugipay webhooks.
//!
//! Exit codes (stable, for scripts):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`verify`: the delivery verified; `send`: every delivery got a 2xx) |
//! | 1 | `send`: at least one delivery got a non-2xx answer or no answer |
//! | 2 | usage error (from the argument parser, or `send` asked for more than 10,000,000 deliveries) |
//! | 3 | no usable secret (unset, empty, unreadable secret file) |
//! | 4 | I/O error (input file, network set-up, an inbox that does not answer) |
//! | 5 | not found (`inbox show`, `retry`, `replay` of an id the inbox does not hold) |
//! | 10 | `verify`: `signature_missing` |
//! | 11 | `verify`: `signature_malformed` |
//! | 12 | `verify`: `signature_stale` |
//! | 13 | `verify`: `signature_invalid` |

/// `println!` that ends the command quietly when the reader went away
/// (`| head -1`): see [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out(&format!($($arg)*)) };
}

mod client;
mod deliveries;
mod inbox;
mod listen;
mod replay;
mod samples;
mod secret;
mod send;
mod sign;
mod time;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Sign, verify, send and receive Plugipay webhooks.
///
/// The signing secret comes from PLUGIPAY_WEBHOOK_SECRET (several secrets
/// separated by commas during a rotation), --secret-file, or --secret.
#[derive(Debug, Parser)]
#[command(name = "plugipay-webhook", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    secret: secret::SecretArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the X-Plugipay-Signature value for a body.
    Sign(SignArgs),
    /// Verify a captured delivery: body and signature header.
    Verify(VerifyArgs),
    /// Sign and POST deliveries the way Plugipay does.
    Send(send::SendArgs),
    /// Run a development receiver that verifies and prints each delivery
    /// (and saves, forwards, or answers like a failing application).
    Listen(listen::ListenArgs),
    /// Send deliveries saved by `listen --save` again, byte-exact.
    Replay(replay::ReplayArgs),
    /// Operate a durable inbox: stats, list, show, retry, replay, prune.
    Inbox(inbox::InboxArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
struct SignArgs {
    /// Sign at this Unix timestamp (seconds, 0 to 9223372036854775807)
    /// instead of now.
    #[arg(long, short = 't', value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    timestamp: Option<u64>,

    /// The body: a file, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The X-Plugipay-Signature header value as received.
    #[arg(long = "header", short = 'H')]
    header: String,

    /// Tolerance in seconds (default 300).
    #[arg(long, default_value_t = 300)]
    tolerance: u64,

    /// Judge as of this Unix timestamp instead of now (to check an old capture).
    #[arg(long)]
    now: Option<i64>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,

    /// On failure, try the usual mistakes — a newline added to the body, the
    /// body pretty-printed or re-serialised, the wrong one of several
    /// secrets, a timestamp in milliseconds — and say which would have
    /// matched (never printing a secret or a MAC).
    #[arg(long)]
    explain: bool,

    /// The body: a file, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn config(message: impl Into<String>) -> Failure {
        Failure {
            code: 3,
            message: message.into(),
        }
    }

    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    fn io(message: impl Into<String>) -> Failure {
        Failure {
            code: 4,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            code: 5,
            message: message.into(),
        }
    }
}

/// Prints one line on standard output. A reader that went away (`| head`)
/// ends the command quietly, with status 0, instead of a panic.
pub(crate) fn out(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(4);
    }
}

fn read_input(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::io(format!("cannot read standard input: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| Failure::io(format!("cannot read {}: {e}", path.display())))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(args) => sign::run(&cli.secret, &args),
        Command::Verify(args) => verify::run(&cli.secret, &args),
        Command::Send(args) => send::run(&cli.secret, args),
        Command::Listen(args) => listen::run(&cli.secret, args),
        Command::Replay(args) => replay::run(&cli.secret, args),
        Command::Inbox(args) => inbox::run(&cli.secret, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "plugipay-webhook", &mut script);
            out(String::from_utf8_lossy(&script).trim_end_matches('\n'));
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
