//! The documentation's links: every relative link in `README.md` and `docs/*.md` names a file of
//! the repository, and every `#section` it names is a heading of that file (GitHub's anchors),
//! so an edit that renames or loses a section the README sends readers to fails here. This
//! includes docs/PROTOCOL.md's links to its own sections (once a test of the protocol crate).
//!
//! Each test collects every problem it finds and fails once, listing them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// GitHub's anchor of a heading: lower case; letters, digits, `-` and `_` kept, spaces become
/// `-`, everything else dropped. A repeated anchor gets `-1`, `-2`, ... in order.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        let base: String = text
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the inline links `[text](target)` of `markdown`, outside code fences and
/// code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let mut plain = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                plain.push(c);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// Every problem with the relative links of `file` (a path relative to the root).
fn problems_of(root: &Path, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join(file)).expect("a documentation file");
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            PathBuf::from(file)
        } else {
            dir.join(path)
        };
        let full = root.join(&resolved);
        if !full.exists() {
            problems.push(format!(
                "{file}: link to {target}: no file {}",
                resolved.display()
            ));
            continue;
        }
        if let Some(anchor) = anchor {
            let is_md = resolved.extension().is_some_and(|e| e == "md");
            let headings = is_md
                .then(|| std::fs::read_to_string(&full).map(|t| anchors(&t)).ok())
                .flatten();
            match headings {
                Some(h) if h.contains(anchor) => {}
                Some(_) => problems.push(format!(
                    "{file}: link to {target}: {} has no section #{anchor}",
                    resolved.display()
                )),
                None => problems.push(format!(
                    "{file}: link to {target}: an anchor into a file that is not Markdown"
                )),
            }
        }
    }
    problems
}

#[test]
fn every_section_the_docs_link_to_exists() {
    let root = repo_root();
    let mut files = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let name = entry.expect("an entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let problems: Vec<String> = files.iter().flat_map(|f| problems_of(&root, f)).collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The README sends operators to these sections of docs/OPERATIONS.md; the link check above
/// holds them to existing, this test to being linked.
#[test]
fn the_readme_links_the_operators_guide_sections() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let linked: BTreeSet<String> = link_targets(&readme).into_iter().collect();
    let missing: Vec<&str> = [
        "docs/OPERATIONS.md#running-n-nodes",
        "docs/OPERATIONS.md#health-readiness-and-logs",
        "docs/OPERATIONS.md#metrics",
        "docs/OPERATIONS.md#accounts-and-admins",
    ]
    .into_iter()
    .filter(|t| !linked.contains(*t))
    .collect();
    assert!(missing.is_empty(), "README.md does not link {missing:?}");
}

#[test]
fn anchors_follow_github() {
    let a = anchors(
        "# Title\n## `switchboard-hub` settings\n### On one machine: `scripts/cluster`\n\
         ## Guarantees (v1)\n```\n# not a heading\n```\n## Title\n",
    );
    for want in [
        "title",
        "switchboard-hub-settings",
        "on-one-machine-scriptscluster",
        "guarantees-v1",
        "title-1",
    ] {
        assert!(a.contains(want), "{want} in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    assert_eq!(
        link_targets("see [a](x.md#y) and `[b](not)` and [c](#z)"),
        ["x.md#y", "#z"]
    );
}
