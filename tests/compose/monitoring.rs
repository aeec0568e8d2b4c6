//! The monitoring part of the deployment: `deploy/prometheus.yml` scrapes every node of
//! docker-compose.yml on its metrics listener (and nothing else), the metrics ports are never
//! published, Grafana is provisioned with the data source and the dashboard, the images are
//! pinned, and the dashboard's queries name only metrics a running hub (and auth node) exports,
//! covering every one of them.

use std::collections::BTreeSet;

use yaml_rust2::Yaml;

use crate::sources::{read_repo_file, Problems};
use crate::yaml::{compose, environment, scalar, service};
use crate::HUBS;

/// Where each kind of node listens for scrapes: the setting and the port docker-compose.yml
/// must give it.
const HUB_METRICS: (&str, &str) = ("SWITCHBOARD_METRICS_LISTEN", "9464");
const AUTH_METRICS: (&str, &str) = ("SWITCHBOARD_AUTH_METRICS_LISTEN", "9465");

fn yaml_file(path: &str) -> Yaml {
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&read_repo_file(path))
        .unwrap_or_else(|err| panic!("{path} is not valid YAML: {err}"));
    assert_eq!(docs.len(), 1, "{path} holds one YAML document");
    docs.remove(0)
}

/// A service's volume mounts, `source:target[:mode]` as written.
fn volumes(svc: &Yaml) -> Vec<String> {
    svc["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect()
}

fn mounts(svc: &Yaml, source: &str, target: &str) -> bool {
    volumes(svc)
        .iter()
        .any(|v| v.starts_with(&format!("{source}:{target}")))
}

#[test]
fn prometheus_scrapes_every_node_on_its_metrics_listener_only() {
    let doc = compose();
    let mut problems = Problems::default();
    let prometheus = service(&doc, "prometheus");
    if !mounts(
        prometheus,
        "./deploy/prometheus.yml",
        "/etc/prometheus/prometheus.yml",
    ) {
        problems.push("prometheus must mount ./deploy/prometheus.yml as its config".into());
    }

    let cfg = yaml_file("deploy/prometheus.yml");
    let mut scraped = BTreeSet::new();
    for job in cfg["scrape_configs"].as_vec().into_iter().flatten() {
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        if path != "/metrics" {
            problems.push(format!(
                "job {:?}: metrics_path {path}",
                scalar(&job["job_name"])
            ));
        }
        for target in job["static_configs"]
            .as_vec()
            .into_iter()
            .flatten()
            .flat_map(|c| c["targets"].as_vec().into_iter().flatten())
            .map(scalar)
        {
            let Some((host, port)) = target.rsplit_once(':') else {
                problems.push(format!("target {target:?} has no port"));
                continue;
            };
            let (setting, want_port) = if HUBS.contains(&host) {
                HUB_METRICS
            } else if host == "auth" {
                AUTH_METRICS
            } else {
                problems.push(format!(
                    "target {target}: {host} is not a Switchboard node of docker-compose.yml"
                ));
                continue;
            };
            let listen = environment(service(&doc, host)).get(setting).cloned();
            let want = format!("0.0.0.0:{want_port}");
            if port != want_port || listen.as_deref() != Some(want.as_str()) {
                problems.push(format!(
                    "target {target}: {host} must set {setting}={want} and be scraped on \
                     {want_port} (sets {listen:?})"
                ));
            }
            scraped.insert(host.to_owned());
        }
    }
    let nodes: BTreeSet<String> = HUBS
        .iter()
        .copied()
        .chain(["auth"])
        .map(str::to_owned)
        .collect();
    if scraped != nodes {
        problems.push(format!(
            "deploy/prometheus.yml scrapes {scraped:?}, expected every node {nodes:?}"
        ));
    }
    // The metrics ports stay inside the compose network: no node publishes a port, and nothing
    // publishes a metrics port.
    for node in &nodes {
        if !service(&doc, node)["ports"].is_badvalue() {
            problems.push(format!(
                "{node} publishes ports; only haproxy (and the monitoring UIs) may"
            ));
        }
    }
    for (name, svc) in doc["services"].as_hash().expect("services") {
        for port in svc["ports"].as_vec().into_iter().flatten().map(scalar) {
            if port.contains(HUB_METRICS.1) || port.contains(AUTH_METRICS.1) {
                problems.push(format!(
                    "{}: publishes a metrics port ({port})",
                    scalar(name)
                ));
            }
        }
    }
    // The monitoring UIs are for the operator: published on the host's loopback only.
    for ui in ["prometheus", "grafana"] {
        for port in service(&doc, ui)["ports"]
            .as_vec()
            .into_iter()
            .flatten()
            .map(scalar)
        {
            if !port.starts_with("127.0.0.1:") {
                problems.push(format!("{ui}: port {port} is not bound to 127.0.0.1"));
            }
        }
    }
    problems.check("prometheus");
}

#[test]
fn grafana_is_provisioned_with_prometheus_and_the_dashboard() {
    let doc = compose();
    let mut problems = Problems::default();
    let grafana = service(&doc, "grafana");
    if !mounts(
        grafana,
        "./deploy/grafana/provisioning",
        "/etc/grafana/provisioning",
    ) {
        problems.push("grafana must mount ./deploy/grafana/provisioning".into());
    }
    let sources = yaml_file("deploy/grafana/provisioning/datasources/prometheus.yml");
    let source = &sources["datasources"][0];
    let port = scalar(&service(&doc, "prometheus")["ports"][0])
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let url = scalar(&source["url"]);
    if url != format!("http://prometheus:{port}") {
        problems.push(format!(
            "the data source's url {url:?} is not the prometheus service"
        ));
    }
    let uid = scalar(&source["uid"]);

    let providers = yaml_file("deploy/grafana/provisioning/dashboards/switchboard.yml");
    let path = scalar(&providers["providers"][0]["options"]["path"]);
    if !mounts(grafana, "./deploy/grafana/dashboards", &path) {
        problems.push(format!(
            "grafana must mount ./deploy/grafana/dashboards at the provider's path {path:?}"
        ));
    }
    let dashboard = dashboard();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["datasource"]["uid"] != uid.as_str() {
            problems.push(format!("panel {title:?}: data source is not {uid:?}"));
        }
        if exprs_of(panel).is_empty() {
            problems.push(format!("panel {title:?} has no query"));
        }
    }
    problems.check("grafana");
}

#[test]
fn monitoring_images_are_pinned() {
    let doc = compose();
    let mut problems = Problems::default();
    for name in ["prometheus", "grafana"] {
        let image = scalar(&service(&doc, name)["image"]);
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
        if tag.is_empty() || tag == "latest" || !tag.chars().any(|c| c.is_ascii_digit()) {
            problems.push(format!(
                "{name}: image {image:?} is not pinned to a version"
            ));
        }
    }
    problems.check("images");
}

/// deploy/grafana/dashboards/switchboard.json, parsed.
fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read_repo_file(
        "deploy/grafana/dashboards/switchboard.json",
    ))
    .expect("the dashboard is JSON")
}

/// The panels that query (rows excluded).
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

fn exprs_of(panel: &serde_json::Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect()
}

/// Every `switchboard_*` identifier in a query.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("switchboard_"))
        .map(str::to_owned)
        .collect()
}

/// The series names (before labels) and the metric families (`# TYPE` lines) of a scrape.
async fn scrape(url: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .expect("the metrics listener answers")
        .text()
        .await
        .unwrap();
    let mut series = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.extend(rest.split_whitespace().next().map(str::to_owned));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            series.insert(name.to_owned());
        }
    }
    (series, families)
}

/// A hub started as the suites start it (with the scaled backend, its auth node too) exports
/// every metric the dashboard queries, and the dashboard shows every metric it exports.
#[tokio::test]
async fn the_dashboard_queries_exactly_the_metrics_the_nodes_export() {
    let hub = switchboard_tests::inproc::InProcessHub::start().await;
    let (mut series, mut families) = scrape(&hub.metrics_url()).await;
    if let Some(url) = hub.auth_metrics_url() {
        let (more_series, more_families) = scrape(&url).await;
        series.extend(more_series);
        families.extend(more_families);
    }
    let dashboard = dashboard();
    let mut problems = Problems::default();
    let mut used = BTreeSet::new();
    for panel in panels(&dashboard) {
        for expr in exprs_of(panel) {
            for name in metric_names(&expr) {
                if !series.contains(&name) {
                    problems.push(format!(
                        "panel {:?} queries {name}, which no node exports",
                        panel["title"]
                    ));
                }
                used.insert(name);
            }
        }
    }
    for family in &families {
        let shown = used.iter().any(|name| {
            name == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| *name == format!("{family}{suffix}"))
        });
        if !shown {
            problems.push(format!("{family} is exported but on no panel"));
        }
    }
    if families.len() < 20 {
        problems.push(format!("too few metric families exported: {families:?}"));
    }
    problems.check("dashboard");
}
