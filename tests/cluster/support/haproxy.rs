//! HAProxy in front of the hubs: the repository's template (`deploy/haproxy-cluster.cfg.in`,
//! the one `scripts/cluster` renders) filled in for this test, and its stats page read as CSV.

use std::net::SocketAddr;
use std::path::Path;

/// The loopback address HAProxy connects to the hubs from (`@SOURCE@` in the template), the
/// only one the hubs take PROXY protocol headers from.
pub const PROXY_SOURCE: &str = "127.0.0.2";

/// The configuration for a frontend on `bind`, stats on `stats`, and one server per hub.
pub fn render_config(bind: SocketAddr, stats: SocketAddr, hubs: &[SocketAddr]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy-cluster.cfg.in");
    let template = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    let servers: String = hubs
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("    server {} {addr} check\n", hub_name(i)))
        .collect();
    let mut out = String::new();
    for line in template.lines() {
        if line.trim() == "@SERVERS@" {
            out.push_str(&servers);
        } else {
            out.push_str(
                &line
                    .replace("@BIND@", &bind.to_string())
                    .replace("@STATS_BIND@", &stats.to_string())
                    .replace("@SOURCE@", PROXY_SOURCE),
            );
            out.push('\n');
        }
    }
    let unfilled = out
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains('@'));
    assert_eq!(
        unfilled,
        None,
        "a placeholder is left from {}",
        path.display()
    );
    out
}

/// HAProxy's name for hub `i` (0-based): `hub1`, `hub2`, ...; also the hub's `--node-id`.
pub fn hub_name(i: usize) -> String {
    format!("hub{}", i + 1)
}

/// One hub as HAProxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// `hub1`, `hub2`, ...
    pub name: String,
    /// `UP`, `DOWN`, `UP 1/2` (going down), `no check`, ...
    pub status: String,
    /// Result of the last health check: `L7OK` once one passed.
    pub check_status: String,
    /// Client connections currently forwarded to this hub.
    pub sessions: u64,
}

/// The servers of backend `hubs` from the stats CSV (`GET /stats;csv`).
pub async fn servers(stats: SocketAddr) -> Vec<ServerStat> {
    let url = format!("http://{stats}/stats;csv");
    let csv = reqwest::get(&url)
        .await
        .and_then(|response| response.error_for_status())
        .unwrap_or_else(|err| panic!("GET {url}: {err}"))
        .text()
        .await
        .expect("the stats CSV");
    parse_servers(&csv)
}

/// Parses the stats CSV, whose first line names the columns (`# pxname,svname,...`).
fn parse_servers(csv: &str) -> Vec<ServerStat> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .expect("the stats CSV starts with a header")
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in the stats CSV"))
    };
    let (px, sv, status, check, scur) = (
        column("pxname"),
        column("svname"),
        column("status"),
        column("check_status"),
        column("scur"),
    );
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > scur.max(check) && f[px] == "hubs")
        .filter(|f| f[sv] != "FRONTEND" && f[sv] != "BACKEND")
        .map(|f| ServerStat {
            name: f[sv].to_owned(),
            status: f[status].to_owned(),
            check_status: f[check].to_owned(),
            sessions: f[scur].parse().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_csv_is_read_by_column_name() {
        let csv = "# pxname,svname,qcur,scur,status,check_status\n\
                   hubs,hub1,0,2,UP,L7OK\n\
                   hubs,hub2,0,0,DOWN,L4CON\n\
                   hubs,BACKEND,0,2,UP,\n\
                   stats,FRONTEND,0,1,OPEN,\n";
        let servers = parse_servers(csv);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].name, "hub1");
        assert_eq!(servers[0].sessions, 2);
        assert_eq!(servers[1].status, "DOWN");
        assert_eq!(servers[1].check_status, "L4CON");
    }
}
