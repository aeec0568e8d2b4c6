//! The tracing subscriber of a binary: one function, taking [`Logging`] options, so that a new
//! option (an output format, say) is one field and reaches every binary.
//!
//! Logs go to standard output, one event per line: human-readable text (`--log-format text`,
//! the default) or one JSON object per line (`--log-format json`, for log pipelines), with the
//! fields of the event's spans (`request`: method, path, id, node, user; `conn`: id, node,
//! user). ANSI colours are used only when standard output is a terminal and `NO_COLOR` is unset
//! or empty, so files and pipes get plain text.

use std::io::IsTerminal;

/// The output format of the logs (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: time, level, spans with their fields, message, fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`),
    /// `span` (the innermost) and `spans` (every open span, outermost first, with its fields).
    Json,
}

/// How a binary logs. `RUST_LOG`, when set and valid, overrides [`Logging::default_filter`].
#[derive(Debug, Clone)]
pub struct Logging {
    /// The `EnvFilter` directives used when `RUST_LOG` is unset or invalid, e.g.
    /// `"info,tower_http=warn"`.
    pub default_filter: &'static str,
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// Installs the process-wide subscriber: events on standard output in `opts.format`, filtered
/// by `RUST_LOG` or else by `opts.default_filter`, coloured only on a terminal.
///
/// # Panics
/// If a global subscriber is already installed (call it once, first thing in `main`).
pub fn init(opts: &Logging) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(opts));
    match opts.format {
        LogFormat::Text => builder
            .with_ansi(colour(std::io::stdout().is_terminal()))
            .init(),
        // No ANSI codes inside JSON strings, ever.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .init(),
    }
}

/// Whether text logs are coloured: on a terminal, unless `NO_COLOR` says otherwise
/// (<https://no-color.org>: set and not empty).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `RUST_LOG`, or the default directives when it is unset or does not parse.
fn filter(opts: &Logging) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(opts.default_filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_applies_without_rust_log() {
        // Tests do not set RUST_LOG; if the developer does, it wins, which is the rule tested.
        let opts = Logging {
            default_filter: "info,tower_http=warn",
            format: LogFormat::Text,
        };
        let got = filter(&opts).to_string();
        match std::env::var("RUST_LOG") {
            Ok(_) => {}
            Err(_) => {
                assert!(got.contains("tower_http=warn"), "{got}");
                assert!(got.contains("info"), "{got}");
            }
        }
    }

    #[test]
    fn no_colour_off_a_terminal() {
        assert!(!colour(false));
        // On a terminal it depends on NO_COLOR, which the test does not change (the
        // environment is shared by the test threads).
        assert_eq!(
            colour(true),
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        );
    }

    #[test]
    fn the_format_parses_from_its_flag_value() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("xml", false).is_err());
    }
}
