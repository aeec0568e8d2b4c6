//! The workspace's binaries and their processes, for tests that start them (the e2e tests that
//! measure a real hub process, the CLI suite, the cluster suite).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `target/<profile>/`, where cargo puts the workspace's binaries: the parent of the running
/// test executable's directory (`target/<profile>/deps/<test>-<hash>`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The path of binary `bin` of workspace package `package`.
///
/// A test crate cannot depend on another package's binary, so under cargo (a `CARGO`
/// variable) the first call for each binary runs `cargo build -p PACKAGE --bin BIN` with the
/// test's profile and target dir: a no-op when it is built already, and never a stale binary
/// when only its package changed. Run outside cargo, the binary must exist.
///
/// # Panics
/// If the build fails or the binary is missing.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let dir = bin_dir();
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if built
            .get_or_insert_with(HashSet::new)
            .insert(bin.to_owned())
        {
            let profile = match dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") => "dev".to_owned(),
                Some(other) => other.to_owned(),
                None => panic!("no profile directory in {}", dir.display()),
            };
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", package, "--bin", bin])
                .args(["--profile", &profile])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build of {bin} failed");
        }
    }
    let path = dir.join(bin);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// The resident set (`VmRSS` of `/proc/<pid>/status`) of process `pid`, in bytes.
///
/// # Panics
/// If the process does not exist or its status has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/<pid>/status");
    kib * 1024
}
