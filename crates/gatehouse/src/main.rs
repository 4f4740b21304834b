//! The `gatehouse` binary: the server (`serve`) and the CLI (`login`, `token`, `kubeconfig`,
//! `whoami`, `logout`, `completion`; see `gatehouse::cli`). The commands live in the library
//! (`lib.rs`); this only parses the command line and runs one.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // kubectl runs `gatehouse token` before every request it makes: parse it alone, without
    // building the whole CLI. Its help and errors are the same as through the full parser.
    if std::env::args_os().nth(1).is_some_and(|a| a == "token") {
        return gatehouse::cli::TokenCli::parse().run();
    }
    gatehouse::Cli::parse().run()
}
