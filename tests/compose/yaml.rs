//! docker-compose.yml read with `yaml-rust2`: the few Compose shapes the checks need, each in
//! every form the Compose specification allows (short and long).

use std::collections::BTreeMap;

use yaml_rust2::Yaml;

use crate::sources::read_repo_file;

/// docker-compose.yml, parsed (one document).
pub fn compose() -> Yaml {
    let text = read_repo_file("docker-compose.yml");
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("docker-compose.yml is not valid YAML: {err}"));
    assert_eq!(docs.len(), 1, "docker-compose.yml holds one YAML document");
    docs.remove(0)
}

/// The service called `name` (panics if absent: `services_are_exactly_the_topology` reports it).
pub fn service<'a>(doc: &'a Yaml, name: &str) -> &'a Yaml {
    let svc = &doc["services"][name];
    assert!(!svc.is_badvalue(), "service {name} is missing");
    svc
}

/// A service's environment, in either Compose form (map, or list of `KEY=VALUE`).
pub fn environment(svc: &Yaml) -> BTreeMap<String, String> {
    let env = &svc["environment"];
    let mut out = BTreeMap::new();
    if let Some(map) = env.as_hash() {
        for (key, value) in map {
            out.insert(scalar(key), scalar(value));
        }
    } else if let Some(list) = env.as_vec() {
        for item in list {
            let item = scalar(item);
            let (key, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
            out.insert(key.to_owned(), value.to_owned());
        }
    }
    out
}

/// A scalar as text (`8080` and `"8080"` alike); empty for anything else.
pub fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A `command`/`test` value as a list of words (a string is split on whitespace).
pub fn words(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Array(items) => items.iter().map(scalar).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The names of the services `svc` depends on, with the condition of each (`None` in the
/// short list form, which waits only for the container to start).
pub fn depends_on(svc: &Yaml) -> BTreeMap<String, Option<String>> {
    let deps = &svc["depends_on"];
    let mut out = BTreeMap::new();
    if let Some(map) = deps.as_hash() {
        for (name, spec) in map {
            let condition = spec["condition"].as_str().map(str::to_owned);
            out.insert(scalar(name), condition);
        }
    } else if let Some(list) = deps.as_vec() {
        for name in list {
            out.insert(scalar(name), None);
        }
    }
    out
}
