//! Where a password comes from, in this order:
//! 1. `--password-stdin`: the first line of standard input (for scripts; nothing on the command
//!    line, where other users could see it in the process list);
//! 2. the `SWITCHBOARD_PASSWORD` environment variable;
//! 3. a prompt on the terminal with echo off (rpassword), when stdin is a terminal;
//! 4. otherwise an error: a script must say where its password is.

use std::io::{self, BufRead, IsTerminal};

use super::error::CliError;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "SWITCHBOARD_PASSWORD";

/// Reads a password. `confirm`: prompt twice and compare (registration); only for the prompt.
pub fn read(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(CliError::Stdin)?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(CliError::Usage(
                "--password-stdin: no password on stdin".into(),
            ));
        }
        return Ok(password.to_owned());
    }
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    if !io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "no password: use --password-stdin, set {PASSWORD_ENV}, or run in a terminal"
        )));
    }
    let password = prompt("Password: ")?;
    if confirm && prompt("Password (again): ")? != password {
        return Err(CliError::Usage("the passwords do not match".into()));
    }
    Ok(password)
}

/// Prompts on the terminal (`/dev/tty`) with echo off.
fn prompt(text: &str) -> Result<String, CliError> {
    rpassword::prompt_password(text).map_err(CliError::Terminal)
}
