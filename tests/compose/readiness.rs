//! Readiness and draining in the deployment files: every health check of a Switchboard node asks
//! `/readyz` (ready: its dependencies answer; 503 while it drains), HAProxy's own asks its
//! monitor URI, both HAProxy configs check the hubs' `/readyz` (and fall back to the live ones
//! when none is ready), and Docker waits long enough on `stop` for a hub to drain and then close
//! its sockets.

use crate::sources::{read_repo_file, Problems};
use crate::yaml::{compose, environment, scalar, service, words};
use crate::HUBS;

/// Room left on top of the drain delay and the shutdown grace for the process's own teardown.
const STOP_SLACK_MS: u64 = 2_000;

#[test]
fn node_health_checks_ask_readyz_and_haproxy_its_monitor_uri() {
    let doc = compose();
    let mut problems = Problems::default();
    let mut nodes: Vec<(&str, &str)> = HUBS.iter().map(|hub| (*hub, "8080")).collect();
    nodes.push(("auth", "8090"));
    for (name, port) in nodes {
        let test = words(&service(&doc, name)["healthcheck"]["test"]);
        let want = format!("http://127.0.0.1:{port}/readyz");
        if !test.contains(&want) {
            problems.push(format!(
                "{name}: the health check must request {want}, it runs {test:?}"
            ));
        }
    }
    let haproxy = words(&service(&doc, "haproxy")["healthcheck"]["test"]).join(" ");
    if !haproxy.contains("GET /healthz") {
        problems.push(format!(
            "haproxy: the health check must ask its monitor URI /healthz: {haproxy}"
        ));
    }
    problems.check("health checks");
}

#[test]
fn both_haproxy_configs_check_the_hubs_readiness() {
    let mut problems = Problems::default();
    for path in ["deploy/haproxy.cfg", "deploy/haproxy-cluster.cfg.in"] {
        let text = read_repo_file(path);
        let directives = config_words(&text);
        let has = |words: &[&str]| directives.iter().any(|d| d.as_slice() == words);
        if !has(&["option", "httpchk", "GET", "/readyz"]) {
            problems.push(format!("{path}: lacks `option httpchk GET /readyz`"));
        }
        if !has(&["http-check", "expect", "status", "200"]) {
            problems.push(format!("{path}: lacks `http-check expect status 200`"));
        }
        // The check's interval times the failures needed must fit in the hubs' drain delay,
        // or HAProxy still sends clients to a node that is about to close them with 1012.
        let default_server = directives
            .iter()
            .find(|d| d.first() == Some(&"default-server"));
        let value = |key: &str| {
            default_server.and_then(|d| {
                d.iter()
                    .position(|w| *w == key)
                    .and_then(|i| d.get(i + 1))
                    .map(|v| v.to_string())
            })
        };
        let inter_ms = value("inter").and_then(|v| duration_ms(&v));
        let fall = value("fall").and_then(|v| v.parse::<u64>().ok());
        let drain = hub_default_ms("SWITCHBOARD_DRAIN_DELAY_MS");
        match (inter_ms, fall) {
            (Some(inter), Some(fall)) if inter * fall < drain => {}
            other => problems.push(format!(
                "{path}: default-server `inter` x `fall` ({other:?}) must be under the hubs' \
                 --drain-delay-ms default ({drain} ms)"
            )),
        }
    }
    problems.check("HAProxy readiness checks");
}

#[test]
fn docker_waits_for_a_hub_to_drain_and_close_its_sockets() {
    let doc = compose();
    let mut problems = Problems::default();
    for hub in HUBS {
        let svc = service(&doc, hub);
        let env = environment(svc);
        let setting = |name: &str| {
            env.get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| hub_default_ms(name))
        };
        let need = setting("SWITCHBOARD_DRAIN_DELAY_MS")
            + setting("SWITCHBOARD_SHUTDOWN_GRACE_MS")
            + STOP_SLACK_MS;
        let got = duration_ms(&scalar(&svc["stop_grace_period"]));
        if got.is_none_or(|got| got < need) {
            problems.push(format!(
                "{hub}: stop_grace_period is {got:?} ms, needs at least {need} ms (drain delay + \
                 shutdown grace + {STOP_SLACK_MS} ms)"
            ));
        }
    }
    problems.check("stop_grace_period");
}

/// The `(name, address)` of every `server` line of backend `backend`, from a config's lines
/// split into words (comments removed).
pub fn backend_servers(lines: &[Vec<&str>], backend: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut servers = Vec::new();
    for words in lines.iter().filter(|w| !w.is_empty()) {
        match words[0] {
            "backend" | "frontend" | "listen" | "defaults" | "global" | "resolvers" => {
                inside = words[0] == "backend" && words.get(1) == Some(&backend);
            }
            "server" if inside && words.len() >= 3 => {
                servers.push((words[1].to_owned(), words[2].to_owned()));
            }
            _ => {}
        }
    }
    servers
}

/// Words of each line of `text`, comments removed.
fn config_words(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect()
        })
        .collect()
}

#[test]
fn with_no_hub_ready_haproxy_falls_back_to_the_live_ones() {
    let mut problems = Problems::default();
    for path in ["deploy/haproxy.cfg", "deploy/haproxy-cluster.cfg.in"] {
        let text = read_repo_file(path);
        let lines = config_words(&text);
        let fallback = [
            "use_backend",
            "hubs_alive",
            "if",
            "{",
            "nbsrv(hubs)",
            "eq",
            "0",
            "}",
        ];
        if !lines.iter().any(|l| l.as_slice() == fallback) {
            problems.push(format!(
                "{path}: the frontend lacks `{}`",
                fallback.join(" ")
            ));
        }
        let (ready, alive) = (
            backend_servers(&lines, "hubs"),
            backend_servers(&lines, "hubs_alive"),
        );
        if ready != alive || (ready.is_empty() && !text.contains("@SERVERS@")) {
            problems.push(format!(
                "{path}: backends hubs {ready:?} and hubs_alive {alive:?} must list the same hubs"
            ));
        }
        // hubs_alive checks liveness: everything after its `backend` line up to the next section.
        let start = lines
            .iter()
            .position(|l| l.as_slice() == ["backend", "hubs_alive"]);
        let section: Vec<&Vec<&str>> = start
            .map(|at| {
                lines[at + 1..]
                    .iter()
                    .take_while(|l| {
                        !matches!(l.first(), Some(&("backend" | "frontend" | "listen")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !section
            .iter()
            .any(|l| l.as_slice() == ["option", "httpchk", "GET", "/healthz"])
        {
            problems.push(format!(
                "{path}: backend hubs_alive must check GET /healthz"
            ));
        }
        if path.ends_with(".in")
            && section
                .iter()
                .filter(|l| l.as_slice() == ["@SERVERS@"])
                .count()
                != 1
        {
            problems.push(format!(
                "{path}: backend hubs_alive must hold the @SERVERS@ line"
            ));
        }
    }
    problems.check("HAProxy fallback");
}

/// A duration as Compose and HAProxy write them (`20s`, `1s`, `500ms`, bare milliseconds for
/// HAProxy), in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    if let Some(s) = text.strip_suffix('s') {
        return s.parse::<u64>().ok().map(|s| s * 1_000);
    }
    if let Some(m) = text.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|m| m * 60_000);
    }
    text.parse().ok()
}

/// The default of the hub flag whose environment variable is `env` (milliseconds), read from
/// `hub/src/config.rs`: its `default_value_t`, a literal or a `const` of that file.
fn hub_default_ms(env: &str) -> u64 {
    let source = read_repo_file("hub/src/config.rs");
    let at = source
        .find(&format!("env = \"{env}\""))
        .unwrap_or_else(|| panic!("hub/src/config.rs has no flag with env = \"{env}\""));
    let attribute = &source[at..source[at..].find(")]").map_or(source.len(), |end| at + end)];
    let value = attribute
        .split_once("default_value_t")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
        .map(|rest| rest.trim().trim_end_matches(',').trim().to_owned())
        .unwrap_or_else(|| panic!("the flag with env {env} has no default_value_t"));
    let literal = |text: &str| text.replace('_', "").parse::<u64>().ok();
    literal(&value)
        .or_else(|| {
            let constant = format!("const {value}: u64 =");
            let at = source.find(&constant)? + constant.len();
            literal(source[at..].split(';').next()?.trim())
        })
        .unwrap_or_else(|| panic!("cannot read the default of {env}: {value}"))
}

#[test]
fn durations_and_defaults_are_read() {
    assert_eq!(duration_ms("20s"), Some(20_000));
    assert_eq!(duration_ms("500ms"), Some(500));
    assert_eq!(duration_ms("1m"), Some(60_000));
    assert_eq!(duration_ms("soon"), None);
    assert_eq!(hub_default_ms("SWITCHBOARD_SHUTDOWN_GRACE_MS"), 10_000);
    assert!(hub_default_ms("SWITCHBOARD_DRAIN_DELAY_MS") > 0);
}
