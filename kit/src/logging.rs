//! The tracing subscriber of a binary: one function, taking [`Logging`] options, so that a new
//! option (an output format, say) is one field and reaches every binary.

/// How a binary logs. `RUST_LOG`, when set and valid, overrides [`Logging::default_filter`].
#[derive(Debug, Clone)]
pub struct Logging {
    /// The `EnvFilter` directives used when `RUST_LOG` is unset or invalid, e.g.
    /// `"info,tower_http=warn"`.
    pub default_filter: &'static str,
}

/// Installs the process-wide subscriber: human-readable lines on standard output, filtered by
/// `RUST_LOG` or else by `opts.default_filter`.
///
/// # Panics
/// If a global subscriber is already installed (call it once, first thing in `main`).
pub fn init(opts: &Logging) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(opts))
        .init();
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
}
