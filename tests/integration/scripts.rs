//! The test scripts' own command lines: `--help` prints the usage without running anything, and
//! an argument a script does not know is refused.

use std::path::Path;
use std::process::{Command, Output};

/// `tests/conformance/run.sh` with `args`, pointed at a steward binary that does not exist (a
/// run that went on to the suite would stop there, exit 1).
fn conformance_script(args: &[&str]) -> anyhow::Result<Output> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/run.sh");
    Ok(Command::new("bash")
        .arg(script)
        .args(args)
        .env("STEWARD_BIN", "/nonexistent/steward")
        .output()?)
}

#[test]
fn the_conformance_script_prints_its_usage_on_help() -> anyhow::Result<()> {
    for flag in ["--help", "-h"] {
        let output = conformance_script(&[flag])?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(output.status.code() == Some(0), "{flag}: {output:?}");
        anyhow::ensure!(
            stdout.starts_with("The official MCP conformance suite")
                && stdout.contains("tests/conformance/run.sh --help")
                && !stdout.contains("npm ci (")
                && output.stderr.is_empty(),
            "{flag}: {output:?}"
        );
    }
    Ok(())
}

#[test]
fn the_conformance_script_refuses_an_unknown_argument() -> anyhow::Result<()> {
    let output = conformance_script(&["--suite"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.code() == Some(2), "{output:?}");
    anyhow::ensure!(
        output.stdout.is_empty()
            && stderr.starts_with("unknown argument: --suite\n")
            && stderr.contains("The official MCP conformance suite"),
        "{output:?}"
    );
    Ok(())
}
