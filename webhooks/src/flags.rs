//! [`WebhookFlags`]: the delivery flags, the same on the hub and on the auth node (both run
//! delivery jobs), flattened into each binary's command line.

use std::time::Duration;

use crate::deliver::{DeliveryConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
use crate::AddrPolicy;

/// The delivery flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookFlags {
    /// Longest one webhook delivery attempt may take (connect, send, the receiver's answer),
    /// in milliseconds; a longer one is abandoned and retried. At least 100. Default 10000.
    /// Keep it below --job-timeout-ms.
    #[arg(long = "webhook-timeout-ms", env = "SWITCHBOARD_WEBHOOK_TIMEOUT_MS",
          default_value_t = DEFAULT_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub webhook_timeout_ms: u64,

    /// Let webhook URLs reach link-local and cloud-metadata addresses (169.254.0.0/16,
    /// fe80::/10, fd00:ec2::254, metadata.google.internal), refused by default (SSRF). Only for
    /// a receiver that really lives there.
    #[arg(
        long = "webhook-allow-link-local",
        env = "SWITCHBOARD_WEBHOOK_ALLOW_LINK_LOCAL"
    )]
    pub webhook_allow_link_local: bool,
}

impl WebhookFlags {
    /// The delivery settings these flags make (the others at their defaults; connecting is
    /// bounded by the smaller of its default and the attempt's bound).
    pub fn delivery_config(&self) -> DeliveryConfig {
        let timeout = Duration::from_millis(self.webhook_timeout_ms);
        DeliveryConfig {
            timeout,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT.min(timeout),
            policy: AddrPolicy {
                allow_link_local: self.webhook_allow_link_local,
            },
            ..DeliveryConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        webhooks: WebhookFlags,
    }

    #[test]
    fn defaults_and_bounds() {
        let cfg = Cli::try_parse_from(["x"])
            .unwrap()
            .webhooks
            .delivery_config();
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_response_bytes, 64 * 1024);
        assert!(!cfg.policy.allow_link_local);

        let cfg = Cli::try_parse_from([
            "x",
            "--webhook-timeout-ms",
            "300",
            "--webhook-allow-link-local",
        ])
        .unwrap()
        .webhooks
        .delivery_config();
        assert_eq!(cfg.timeout, Duration::from_millis(300));
        assert_eq!(cfg.connect_timeout, Duration::from_millis(300));
        assert!(cfg.policy.allow_link_local);

        for bad in ["99", "0", "-1", "ten", ""] {
            let arg = format!("--webhook-timeout-ms={bad}");
            let err = Cli::try_parse_from(["x", arg.as_str()]).unwrap_err();
            assert!(
                err.to_string().contains("--webhook-timeout-ms"),
                "{bad}: {err}"
            );
        }

        // Only this test reads these variables.
        std::env::set_var("SWITCHBOARD_WEBHOOK_TIMEOUT_MS", "2500");
        std::env::set_var("SWITCHBOARD_WEBHOOK_ALLOW_LINK_LOCAL", "true");
        let parsed = Cli::try_parse_from(["x"]);
        std::env::remove_var("SWITCHBOARD_WEBHOOK_TIMEOUT_MS");
        std::env::remove_var("SWITCHBOARD_WEBHOOK_ALLOW_LINK_LOCAL");
        let cfg = parsed.unwrap().webhooks.delivery_config();
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert!(cfg.policy.allow_link_local);
    }
}
