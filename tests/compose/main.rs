//! Static checks of the container deployment: `docker-compose.yml`, `Dockerfile`,
//! `deploy/haproxy.cfg`, and the monitoring (`deploy/prometheus.yml`, `deploy/grafana/`). There is no Docker engine where the tests run, so nothing here starts a
//! container; instead each file is parsed and held against the source of truth it depends on:
//! the workspace's binaries (`cargo metadata`), the flags' environment variable names in the
//! binaries' `clap` configs (read as source text), and HAProxy's own config checker.
//!
//! Each test collects every problem it finds and fails once, listing them all.

mod monitoring;
mod readiness;
mod sources;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use yaml_rust2::Yaml;

use sources::{
    auth_config_source, clap_env_names, dockerfile_instructions, flag_names, haproxy_check,
    read_repo_file, repo_root, workspace_binaries, Problems,
};
use yaml::{compose, depends_on, environment, scalar, service, words};

/// The services docker-compose.yml must define, and nothing else.
const SERVICES: &[&str] = &[
    "postgres",
    "redis",
    "auth",
    "hub1",
    "hub2",
    "hub3",
    "haproxy",
    "prometheus",
    "grafana",
];
/// The hub nodes behind HAProxy.
const HUBS: &[&str] = &["hub1", "hub2", "hub3"];
/// The binaries the image must contain.
const BINARIES: &[&str] = &["switchboard-hub", "switchboard-auth"];

#[test]
fn services_are_exactly_the_topology() {
    let doc = compose();
    let names: BTreeSet<String> = doc["services"]
        .as_hash()
        .expect("docker-compose.yml has a services mapping")
        .keys()
        .map(scalar)
        .collect();
    let expected: BTreeSet<String> = SERVICES.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected, "the services of docker-compose.yml");
}

#[test]
fn every_service_has_a_health_check_and_waits_for_healthy_dependencies() {
    let doc = compose();
    let mut problems = Problems::default();
    for &name in SERVICES {
        let svc = service(&doc, name);
        let test = words(&svc["healthcheck"]["test"]);
        match test.first().map(String::as_str) {
            Some("CMD") | Some("CMD-SHELL") if test.len() > 1 => {}
            _ => problems.push(format!(
                "{name}: healthcheck.test must be [CMD, ...] or [CMD-SHELL, ...], got {test:?}"
            )),
        }
        if svc["healthcheck"]["interval"].is_badvalue() {
            problems.push(format!("{name}: healthcheck.interval is not set"));
        }
    }
    let healthy = |deps: &[&str]| -> BTreeMap<String, Option<String>> {
        deps.iter()
            .map(|d| (d.to_string(), Some("service_healthy".to_owned())))
            .collect()
    };
    let mut expected = BTreeMap::from([
        ("postgres", BTreeMap::new()),
        ("redis", BTreeMap::new()),
        ("auth", healthy(&["postgres", "redis"])),
        ("haproxy", healthy(HUBS)),
        ("prometheus", healthy(&["auth", "hub1", "hub2", "hub3"])),
        ("grafana", healthy(&["prometheus"])),
    ]);
    for hub in HUBS {
        expected.insert(hub, healthy(&["postgres", "redis", "auth"]));
    }
    for (name, want) in expected {
        let got = depends_on(service(&doc, name));
        if got != want {
            problems.push(format!("{name}: depends_on is {got:?}, expected {want:?}"));
        }
    }
    problems.check("health checks and depends_on");
}

#[test]
fn images_build_from_this_repository_and_run_the_right_binary() {
    let doc = compose();
    let root = repo_root();
    let mut problems = Problems::default();
    let dockerfile = root
        .join("Dockerfile")
        .canonicalize()
        .expect("Dockerfile exists");
    let mut built = BTreeSet::new();
    for (name, svc) in doc["services"].as_hash().expect("services") {
        let name = scalar(name);
        let build = &svc["build"];
        if build.is_badvalue() {
            continue;
        }
        built.insert(name.clone());
        // `build: .` or `build: {context: ., dockerfile: Dockerfile}`.
        let (context, file) = match build {
            Yaml::String(context) => (context.clone(), "Dockerfile".to_owned()),
            _ => (
                scalar(&build["context"]),
                build["dockerfile"]
                    .as_str()
                    .unwrap_or("Dockerfile")
                    .to_owned(),
            ),
        };
        let context = root.join(&context).canonicalize();
        if context.as_deref().ok() != Some(root.as_path()) {
            problems.push(format!(
                "{name}: build.context must be this repository ({context:?})"
            ));
        }
        let file = root.join(&file).canonicalize();
        if file.as_deref().ok() != Some(dockerfile.as_path()) {
            problems.push(format!(
                "{name}: build.dockerfile must be the repository's Dockerfile ({file:?})"
            ));
        }
    }
    let mut must_build: BTreeSet<String> = HUBS.iter().map(|h| h.to_string()).collect();
    must_build.insert("auth".into());
    if built != must_build {
        problems.push(format!(
            "services built from the Dockerfile: {built:?}, expected {must_build:?}"
        ));
    }
    let command = |name: &str| words(&service(&doc, name)["command"]);
    if command("auth").first().map(String::as_str) != Some("switchboard-auth") {
        problems.push(format!(
            "auth must run switchboard-auth, runs {:?}",
            command("auth")
        ));
    }
    for hub in HUBS {
        let cmd = command(hub);
        if !(cmd.is_empty() || cmd[0] == "switchboard-hub") {
            problems.push(format!("{hub} must run switchboard-hub, runs {cmd:?}"));
        }
    }
    problems.check("build and command");
}

#[test]
fn the_dockerfile_builds_both_workspace_binaries_into_a_slim_runtime() {
    let mut problems = Problems::default();
    let binaries = workspace_binaries();
    for bin in BINARIES {
        if !binaries.contains(*bin) {
            problems.push(format!(
                "the workspace has no binary {bin} (it has {binaries:?})"
            ));
        }
    }
    let instructions = dockerfile_instructions(&read_repo_file("Dockerfile"));
    // Stages in order: (name, instructions).
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (keyword, args) in instructions {
        if keyword == "FROM" {
            let name = args.split_whitespace().collect::<Vec<_>>();
            let stage = match name.as_slice() {
                [_, as_kw, stage] if as_kw.eq_ignore_ascii_case("as") => stage.to_string(),
                _ => format!("stage{}", stages.len()),
            };
            stages.push((stage, Vec::new()));
        } else if let Some((_, body)) = stages.last_mut() {
            body.push((keyword, args));
        }
    }
    assert!(
        stages.len() >= 2,
        "the Dockerfile is multi-stage (a builder and a runtime)"
    );
    let (builder, build_steps) = &stages[0];
    let build = build_steps
        .iter()
        .filter(|(kw, _)| kw == "RUN")
        .find(|(_, args)| args.contains("cargo build"))
        .map(|(_, args)| args.clone())
        .unwrap_or_default();
    for needed in [
        "--release",
        "--locked",
        "-p switchboard-hub",
        "-p switchboard-auth",
    ] {
        if !build.contains(needed) {
            problems.push(format!(
                "the builder stage's `cargo build` lacks {needed}: {build:?}"
            ));
        }
    }
    let (_, runtime) = stages.last().expect("a runtime stage");
    for bin in BINARIES {
        let copied = runtime.iter().any(|(kw, args)| {
            kw == "COPY" && args.contains(&format!("--from={builder}")) && args.contains(bin)
        });
        if !copied {
            problems.push(format!(
                "the runtime stage does not COPY {bin} from {builder}"
            ));
        }
    }
    let cmd = runtime
        .iter()
        .rev()
        .find(|(kw, _)| kw == "CMD")
        .map(|(_, a)| a.as_str());
    if cmd != Some(r#"["switchboard-hub"]"#) {
        problems.push(format!(
            "the image's default command is the hub, got {cmd:?}"
        ));
    }
    // ENV in the image applies to the hub (its default command): the names must be hub flags.
    let hub_env = clap_env_names(&read_repo_file("hub/src/config.rs"));
    for (kw, args) in runtime {
        if kw != "ENV" {
            continue;
        }
        for pair in args.split_whitespace().filter(|w| w.contains('=')) {
            let key = pair.split('=').next().unwrap_or_default();
            if !hub_env.contains(key) {
                problems.push(format!("Dockerfile ENV {key} is not a hub setting"));
            }
        }
    }
    let ignore = read_repo_file(".dockerignore");
    if !ignore
        .lines()
        .any(|l| l.trim().trim_end_matches('/') == "target")
    {
        problems.push(".dockerignore must exclude target/ (the build context)".into());
    }
    problems.check("Dockerfile");
}

#[test]
fn environment_names_are_settings_of_the_binaries_and_agree_across_nodes() {
    let doc = compose();
    let mut problems = Problems::default();
    let hub_src = read_repo_file("hub/src/config.rs");
    let (auth_path, auth_src) = auth_config_source();
    let hub_env = clap_env_names(&hub_src);
    let auth_env = clap_env_names(&auth_src);
    let hub_flags = flag_names(&hub_src);
    let auth_flags = flag_names(&auth_src);
    let mut check = |name: &str, env: &BTreeSet<String>, flags: &BTreeSet<String>, src: &str| {
        let svc = service(&doc, name);
        for key in environment(svc).keys() {
            if !env.contains(key) {
                problems.push(format!(
                    "{name}: {key} is not an `env = \"...\"` name in {src}"
                ));
            }
        }
        for word in words(&svc["command"]).iter().skip(1) {
            let flag = word.split('=').next().unwrap_or_default();
            if flag.starts_with("--") && !flags.contains(flag) {
                problems.push(format!(
                    "{name}: flag {flag} is not a field of the config in {src}"
                ));
            }
        }
    };
    check("auth", &auth_env, &auth_flags, &auth_path);
    for hub in HUBS {
        check(hub, &hub_env, &hub_flags, "hub/src/config.rs");
    }

    // Every node shares the database, Redis and the key prefix; hubs reach the auth node.
    let auth = environment(service(&doc, "auth"));
    let auth_port = auth
        .get("SWITCHBOARD_AUTH_LISTEN")
        .and_then(|listen| listen.rsplit(':').next())
        .unwrap_or("8090")
        .to_owned();
    let mut node_ids = BTreeSet::new();
    for hub in HUBS {
        let env = environment(service(&doc, hub));
        for key in ["DATABASE_URL", "REDIS_URL", "SWITCHBOARD_REDIS_PREFIX"] {
            if !env.contains_key(key) || env.get(key) != auth.get(key) {
                problems.push(format!(
                    "{hub}: {key} must be set and equal the auth node's"
                ));
            }
        }
        let want = format!("http://auth:{auth_port}");
        if env.get("SWITCHBOARD_AUTH_URL") != Some(&want) {
            problems.push(format!("{hub}: SWITCHBOARD_AUTH_URL must be {want}"));
        }
        if env.get("SWITCHBOARD_LISTEN").map(String::as_str) != Some("0.0.0.0:8080") {
            problems.push(format!(
                "{hub}: SWITCHBOARD_LISTEN must be 0.0.0.0:8080 (haproxy.cfg)"
            ));
        }
        match env.get("SWITCHBOARD_NODE_ID") {
            Some(id) if id == hub => {
                node_ids.insert(id.clone());
            }
            other => problems.push(format!(
                "{hub}: SWITCHBOARD_NODE_ID must be {hub}, is {other:?}"
            )),
        }
    }
    let db = auth.get("DATABASE_URL").cloned().unwrap_or_default();
    if !db.contains("@postgres:5432/") {
        problems.push(format!(
            "DATABASE_URL must point at the postgres service: {db}"
        ));
    }
    let redis = auth.get("REDIS_URL").cloned().unwrap_or_default();
    if !redis.starts_with("redis://redis:6379") {
        problems.push(format!(
            "REDIS_URL must point at the redis service: {redis}"
        ));
    }
    problems.check("environment");
}

#[test]
fn haproxy_config_names_the_three_hubs_and_is_valid() {
    let doc = compose();
    let mut problems = Problems::default();
    let haproxy = service(&doc, "haproxy");
    let mounted = haproxy["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(scalar)
        .any(|v| v.starts_with("./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg"));
    if !mounted {
        problems.push("the haproxy service must mount ./deploy/haproxy.cfg as its config".into());
    }
    let ports: Vec<String> = haproxy["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect();
    if !ports.iter().any(|p| p.ends_with(":8080")) {
        problems.push(format!(
            "haproxy must publish the hubs' port 8080, publishes {ports:?}"
        ));
    }

    let cfg = read_repo_file("deploy/haproxy.cfg");
    let lines: Vec<Vec<&str>> = cfg
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect()
        })
        .filter(|words: &Vec<&str>| !words.is_empty())
        .collect();
    let servers = readiness::backend_servers(&lines, "hubs");
    let want: Vec<(String, String)> = HUBS
        .iter()
        .map(|h| (h.to_string(), format!("{h}:8080")))
        .collect();
    if servers != want {
        problems.push(format!(
            "deploy/haproxy.cfg servers of backend hubs are {servers:?}, expected {want:?}"
        ));
    }
    for (directive, words) in [
        ("mode tcp", &["mode", "tcp"][..]),
        ("balance leastconn", &["balance", "leastconn"][..]),
        (
            "option httpchk GET /readyz",
            &["option", "httpchk", "GET", "/readyz"][..],
        ),
    ] {
        if !lines.iter().any(|l| l.as_slice() == words) {
            problems.push(format!("deploy/haproxy.cfg lacks `{directive}`"));
        }
    }
    // The hubs see the real client: PROXY protocol v2 on traffic and health checks alike, from
    // the address the hubs trust.
    let default_server = lines.iter().find(|w| w[0] == "default-server");
    for word in ["send-proxy-v2", "check-send-proxy"] {
        if !default_server.is_some_and(|w| w.contains(&word)) {
            problems.push(format!("deploy/haproxy.cfg: default-server lacks `{word}`"));
        }
    }
    let haproxy_ip = scalar(&haproxy["networks"]["default"]["ipv4_address"]);
    for hub in HUBS {
        let env = environment(service(&doc, hub));
        if env.get("SWITCHBOARD_PROXY_PROTOCOL_FROM") != Some(&haproxy_ip) {
            problems.push(format!(
                "{hub}: SWITCHBOARD_PROXY_PROTOCOL_FROM must be HAProxy's address {haproxy_ip:?}"
            ));
        }
    }
    let every_server_checked = lines
        .iter()
        .filter(|w| w[0] == "server")
        .all(|w| w.contains(&"check"));
    if !every_server_checked {
        problems.push("every hub server line must enable `check`".into());
    }
    problems.check("deploy/haproxy.cfg");
    haproxy_check(&repo_root().join("deploy/haproxy.cfg"));
}

#[test]
fn the_local_cluster_template_renders_to_a_valid_haproxy_config() {
    let template = read_repo_file("deploy/haproxy-cluster.cfg.in");
    let servers: String = (1..=3)
        .map(|i| format!("    server hub{i} 127.0.0.1:{} check\n", 19000 + i))
        .collect();
    let rendered: String = template
        .lines()
        .map(|line| {
            if line.trim() == "@SERVERS@" {
                servers.clone()
            } else {
                line.replace("@BIND@", "127.0.0.1:19000")
                    .replace("@STATS_BIND@", "127.0.0.1:19099")
                    .replace("@SOURCE@", "127.0.0.2")
                    + "\n"
            }
        })
        .collect();
    let unfilled = rendered
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains('@'));
    assert_eq!(
        unfilled, None,
        "a placeholder is left in the rendered template"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, rendered).expect("write the rendered config");
    haproxy_check(&path);
}

#[test]
fn the_cluster_script_is_valid_bash() {
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(repo_root().join("scripts/cluster"))
        .status()
        .expect("run bash -n");
    assert!(status.success(), "scripts/cluster has a bash syntax error");
}
