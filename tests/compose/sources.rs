//! Reading the repository for the static checks: files, the `clap` configs as source text, the
//! Dockerfile's instructions, the workspace's binaries, and HAProxy's config checker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .canonicalize()
        .expect("the repository root exists")
}

/// The text of `path`, relative to the repository root.
pub fn read_repo_file(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("read {}: {err}", full.display()))
}

/// Problems found by one test; [`Problems::check`] fails listing all of them.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    #[track_caller]
    pub fn check(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} problem(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

/// Every `env = "NAME"` in a `clap` config's source.
pub fn clap_env_names(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("env") {
        rest = &rest[at + 3..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let Some(quoted) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = quoted.find('"') {
            names.insert(quoted[..end].to_owned());
        }
    }
    names
}

/// The long flags (`--data-dir`) of a `clap` derive struct: one per `pub field_name:`.
pub fn flag_names(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .filter_map(|rest| rest.split_once(':'))
        .map(|(field, _)| field.trim())
        .filter(|field| {
            !field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(|field| format!("--{}", field.replace('_', "-")))
        .collect()
}

/// The auth node's `clap` config: the source file under `auth/src` that defines
/// `struct NodeConfig` (its path, its text).
pub fn auth_config_source() -> (String, String) {
    let root = repo_root();
    let mut stack = vec![root.join("auth/src")];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).expect("read auth source");
                if text.contains("struct NodeConfig") {
                    let rel = path
                        .strip_prefix(&root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    return (rel, text);
                }
            }
        }
    }
    panic!("no `struct NodeConfig` under auth/src: the auth node's flags (switchboard-auth) are missing");
}

/// A Dockerfile as `(KEYWORD, arguments)` pairs: comments dropped, `\` continuations joined.
pub fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push((
                    keyword.to_ascii_uppercase(),
                    args.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
                current.clear();
            }
        }
    }
    out
}

/// The names of the workspace's binary targets, from `cargo metadata`.
pub fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut bins = BTreeSet::new();
    for package in meta["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin {
                bins.insert(target["name"].as_str().expect("target name").to_owned());
            }
        }
    }
    bins
}

/// Runs `haproxy -c` on `config`; panics with HAProxy's output unless it is valid. HAProxy is a
/// prerequisite of the test suite (scripts/test installs it): a missing binary fails the test.
pub fn haproxy_check(config: &Path) {
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(config)
        .output()
        .unwrap_or_else(|err| panic!("run haproxy -c (is the haproxy package installed?): {err}"));
    assert!(
        output.status.success(),
        "haproxy rejects {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
