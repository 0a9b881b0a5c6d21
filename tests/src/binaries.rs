//! The workspace's binaries, next to the test executable in `target/<profile>`.

use std::path::PathBuf;
use std::sync::Once;

/// `target/<profile>`: the test binary lives in its `deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Path of a workspace binary, building the binaries once if it is missing
/// (e.g. `cargo test -p baton-e2e` alone does not build other packages' bins;
/// a benchmark, in `target/release`, builds them with `--release`).
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = target_dir();
    let path = dir.join(name);
    if !path.exists() {
        BUILD.call_once(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = dir.file_name().is_some_and(|d| d == "release");
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--bins",
                    "-p",
                    "mesos-local",
                    "-p",
                    "baton-executor",
                    "-p",
                    "baton",
                    "-p",
                    "baton-router",
                ])
                .args(release.then_some("--release"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the workspace binaries failed");
        });
    }
    assert!(path.exists(), "{} not found after building", path.display());
    path
}
