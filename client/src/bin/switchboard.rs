//! The `switchboard` command-line client: accounts, rooms, history, sending, following a room
//! live and an interactive terminal chat. The code lives in `client/src/cli/`; this file only
//! hands over to it.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
