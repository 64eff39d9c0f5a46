//! The README's quickstart, run as written: the blocks marked `<!-- quickstart:… -->` are
//! joined into one bash script and run in a directory holding `hello.wasm`, with `wasmbatch` and
//! the AWS CLI (installed by scripts/test) on PATH, and a real registry for the registry block.
//! Only the ports are changed, to free ones.

use std::process::Command;

use wasmbatch_tests::guests;

/// The shell block that follows each marker, in order.
fn quickstart(readme: &str) -> String {
    let mut script = String::new();
    for marker in [
        "quickstart:serve",
        "quickstart:wasmbatch",
        "quickstart:aws",
        "quickstart:registry",
    ] {
        let at = readme
            .find(&format!("<!-- {marker}"))
            .unwrap_or_else(|| panic!("README.md has no <!-- {marker} … --> block"));
        let block = &readme[at..];
        let start = block
            .find("```sh\n")
            .expect("a ```sh block after the marker")
            + 6;
        let end = block[start..].find("```").expect("the block's end") + start;
        script.push_str(&block[start..end]);
    }
    script
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let aws = std::env::var("WASMBATCH_AWS_CLI").expect(
        "WASMBATCH_AWS_CLI is not set: run the suite with scripts/test, which installs the AWS CLI",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The registry block's registry, on a free port too.
    let registry = wasmbatch_tests::registry::Registry::start();
    let script = format!(
        "set -euo pipefail\n{}\nkill %1\nwait\n",
        quickstart(&readme)
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:5000", &registry.host())
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::wasip1::HELLO, dir.path().join("hello.wasm")).unwrap();
    let bin = |path: &str| {
        std::path::Path::new(path)
            .parent()
            .unwrap()
            .display()
            .to_string()
    };
    let path = format!(
        "{}:{}:{}",
        bin(env!("CARGO_BIN_EXE_wasmbatch")),
        bin(&aws),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("WASMBATCH_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the quickstart failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let hello = r#"hello from wasmbatch: args=["hello", "ola", "mundo"]"#;
    for expected in ["pushed hello:latest sha256:", hello, "SUCCEEDED"] {
        assert!(stdout.contains(expected), "{expected:?} not in\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "pushed {}/demo/hello:1.0 sha256:",
            registry.host()
        )) && stdout.contains(r#"hello from wasmbatch: args=["hello", "from", "a", "registry"]"#),
        "the registry block: {stdout}"
    );
    // wasmbatch logs -f, and aws logs get-log-events, both print the job's output.
    assert_eq!(stdout.matches(hello).count(), 2, "{stdout}");
    assert!(
        stderr.contains("succeeded 4"),
        "the array's counts: {stderr}"
    );
}
