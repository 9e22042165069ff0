//! https:// upstreams: the Python SDK server under uvicorn with a certificate of a private CA
//! made for the test (openssl CLI). With the CA as `ca_file` calls go through and are in the
//! ledger; without it, for another host name, or with an expired certificate, calls fail with
//! an error (and a `/health` entry) naming the upstream and what is wrong with the certificate.
//! An upstream that requires a client certificate (mutual TLS) is reached with the one its
//! `client_cert` and `client_key` name, and refuses Steward without them.
//! Without the Python SDK or openssl these tests print a skip message and pass.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, text};

use std::path::Path;
use std::process::Command;

use anyhow::{Context, ensure};
use common::raw::{self, Client, PROTOCOL};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(
    calls_reach_an_https_upstream_only_through_a_trusted_certificate,
    an_upstream_that_requires_a_client_certificate_is_shown_the_configured_one,
);

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("cannot run openssl")?;
    ensure!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn openssl_installed() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        eprintln!("skipped: openssl is not installed (it makes the test's certificates)");
    }
    found
}

/// In `dir`: a CA (`ca.pem`), and a key (`server.key`) with two certificates the CA signed for
/// the host name `localhost` only: `server.pem`, valid for a day, and `expired.pem`, whose
/// validity ended before it began.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=Steward test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca)?;
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &request)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    for (out, days) in [("server.pem", "1"), ("expired.pem", "-1")] {
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                out,
                "-days",
                days,
                "-extfile",
                "server.ext",
            ],
        )?;
    }
    Ok(())
}

/// In `dir`, after [`make_certificates`]: a key (`client.key`) and a client certificate the CA
/// signed (`client.pem`).
fn make_client_certificate(dir: &Path) -> anyhow::Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=steward-gateway",
        ],
    )?;
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "1",
            "-extfile",
            "client.ext",
        ],
    )
}

/// The Python upstream serving https on a free port with `certificate` (and `server.key`).
async fn tls_upstream(
    python: &Path,
    dir: &Path,
    certificate: &str,
) -> anyhow::Result<(PythonUpstream, u16)> {
    tls_upstream_with(python, dir, certificate, &[]).await
}

/// [`tls_upstream`] with more of upstream.py's settings (`TLS_CLIENT_CA`).
async fn tls_upstream_with(
    python: &Path,
    dir: &Path,
    certificate: &str,
    more: &[(&str, &Path)],
) -> anyhow::Result<(PythonUpstream, u16)> {
    let port = free_port()?;
    let cert = dir.join(certificate);
    let key = dir.join("server.key");
    let mut env = vec![("TLS_CERT", cert.as_path()), ("TLS_KEY", key.as_path())];
    env.extend(more);
    let upstream = PythonUpstream::start_with(python, port, &env).await?;
    Ok((upstream, port))
}

/// The upstream's entry in `/health`.
async fn health_of(api: &Client, upstream: &str) -> anyhow::Result<Value> {
    let (_, health) = api.get_json("/health").await?;
    health["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == upstream))
        .cloned()
        .with_context(|| format!("{upstream} missing from /health: {health}"))
}

async fn calls_reach_an_https_upstream_only_through_a_trusted_certificate(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    if !openssl_installed() {
        return Ok(());
    }
    let dir = db.dir().to_path_buf();
    make_certificates(&dir)?;
    let (valid, port) = tls_upstream(&python, &dir, "server.pem").await?;
    let (expired, expired_port) = tls_upstream(&python, &dir, "expired.pem").await?;
    // ca_file is relative to the config file's folder.
    let config = dir.join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"tls\"\nurl = \"https://localhost:{port}/mcp\"\nca_file = \"ca.pem\"\n\n\
             [[upstream]]\nname = \"untrusted\"\nurl = \"https://localhost:{port}/mcp\"\n\n\
             [[upstream]]\nname = \"misnamed\"\nurl = \"https://127.0.0.1:{port}/mcp\"\nca_file = \"ca.pem\"\n\n\
             [[upstream]]\nname = \"expired\"\nurl = \"https://localhost:{expired_port}/mcp\"\nca_file = \"ca.pem\"\n"
        ),
    )?;
    let server = TestServer::start_with(&db, &["--config", &config.display().to_string()]).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "https-test").await?;

    let echo = client
        .call(Some(&session), 1, "tls__echo", json!({"text": "over TLS"}))
        .await?;
    ensure!(text(&echo) == "over TLS", "{}", echo.text);
    let row = raw::ledger_row(&api, "tool=tls__echo", |r| r["status"] == "success").await?;
    ensure!(
        row["upstream"] == "tls" && row["upstream_tool"] == "echo",
        "{row}"
    );

    for (id, upstream, cause) in [
        (
            2,
            "untrusted",
            "its certificate is not signed by a certificate authority Steward trusts",
        ),
        (
            3,
            "misnamed",
            "its certificate is not valid for the host name in its URL",
        ),
        (4, "expired", "its certificate has expired"),
    ] {
        let failed = client
            .call(
                Some(&session),
                id,
                &format!("{upstream}__echo"),
                json!({"text": "x"}),
            )
            .await?;
        let expected =
            format!("upstream {upstream} cannot be reached: TLS handshake failed: {cause}");
        ensure!(
            failed.error_code() == Some(-32010) && failed.error_message().contains(&expected),
            "{upstream}: {}",
            failed.text
        );
        let health = health_of(&api, upstream).await?;
        ensure!(
            health["state"] == "down"
                && health["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(cause)),
            "{health}"
        );
        let row = raw::ledger_row(&api, &format!("tool={upstream}__echo"), |r| {
            r["status"] == "error"
        })
        .await?;
        ensure!(
            row["upstream"] == upstream && row["error_code"] == -32010,
            "{row}"
        );
    }
    // The trusted upstream is not affected by the others' failures.
    let again = client
        .call(Some(&session), 5, "tls__add", json!({"a": 2, "b": 3}))
        .await?;
    ensure!(text(&again) == "5", "{}", again.text);
    server.stop().await;
    drop((valid, expired));
    Ok(())
}

async fn an_upstream_that_requires_a_client_certificate_is_shown_the_configured_one(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    if !openssl_installed() {
        return Ok(());
    }
    let dir = db.dir().to_path_buf();
    make_certificates(&dir)?;
    make_client_certificate(&dir)?;
    let ca = dir.join("ca.pem");
    let (upstream, port) =
        tls_upstream_with(&python, &dir, "server.pem", &[("TLS_CLIENT_CA", &ca)]).await?;
    let config = dir.join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"mtls\"\nurl = \"https://localhost:{port}/mcp\"\nca_file = \"ca.pem\"\n\
             client_cert = \"client.pem\"\nclient_key = \"client.key\"\n\n\
             [[upstream]]\nname = \"anonymous\"\nurl = \"https://localhost:{port}/mcp\"\nca_file = \"ca.pem\"\n"
        ),
    )?;
    let server = TestServer::start_with(&db, &["--config", &config.display().to_string()]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "mtls-test").await?;
    let echo = client
        .call(Some(&session), 1, "mtls__echo", json!({"text": "mutual"}))
        .await?;
    ensure!(text(&echo) == "mutual", "{}", echo.text);
    // Python's ssl (OpenSSL, TLS 1.3) closes the connection without an alert: the cause is
    // the connection's end, not a "certificate required" Steward could name.
    let refused = client
        .call(Some(&session), 2, "anonymous__echo", json!({"text": "x"}))
        .await?;
    ensure!(
        refused.error_code() == Some(-32010)
            && refused
                .error_message()
                .contains("upstream anonymous cannot be reached"),
        "{}",
        refused.text
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// Runs `steward serve` with `toml` as its config in `dir`: its exit status and stderr.
async fn serve_with_config(dir: &Path, toml: &str) -> anyhow::Result<(Option<i32>, String)> {
    let config = dir.join("steward.toml");
    std::fs::write(&config, toml)?;
    let database = format!("sqlite://{}/steward.db", dir.display());
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--database",
            &database,
        ])
        .env_remove("STEWARD_CONFIG")
        .current_dir(dir)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), run).await??;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    Ok((output.status.code(), stderr))
}

/// A client certificate or key that cannot be used stops Steward at start (exit 2), naming the
/// upstream and the file; so does one without the other.
#[tokio::test]
async fn a_client_certificate_that_cannot_be_used_stops_steward_naming_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )?;
    let upstream = "[[upstream]]\nname = \"vendor\"\nurl = \"https://localhost:1/mcp\"\n";
    for (files, expected) in [
        (
            "client_cert = \"missing.pem\"\nclient_key = \"key.pem\"\n",
            format!(
                "upstream vendor: client_cert cannot read {}",
                dir.path().join("missing.pem").display()
            ),
        ),
        (
            "client_cert = \"key.pem\"\nclient_key = \"key.pem\"\n",
            format!(
                "upstream vendor: client_cert {} holds no certificate",
                dir.path().join("key.pem").display()
            ),
        ),
        (
            "client_cert = \"key.pem\"\n",
            "upstream vendor: client_cert and client_key go together".to_string(),
        ),
    ] {
        let (code, stderr) = serve_with_config(dir.path(), &format!("{upstream}{files}")).await?;
        ensure!(
            code == Some(2) && stderr.contains(&expected),
            "{files}: {code:?} {stderr}"
        );
    }
    Ok(())
}

/// A `ca_file` that cannot be used stops Steward at start (exit 2), naming the upstream and
/// the file, rather than leaving the upstream to fail on first use.
#[tokio::test]
async fn a_ca_file_that_cannot_be_used_stops_steward_naming_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )?;
    for (file, problem) in [
        ("missing.pem", "cannot read"),
        ("key.pem", "holds no certificate"),
    ] {
        let config = dir.path().join("steward.toml");
        std::fs::write(
            &config,
            format!(
                "[[upstream]]\nname = \"vendor\"\nurl = \"https://localhost:1/mcp\"\nca_file = \"{file}\"\n"
            ),
        )?;
        let database = format!("sqlite://{}/steward.db", dir.path().display());
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
            .args([
                "serve",
                "--config",
                &config.display().to_string(),
                "--database",
                &database,
            ])
            .env_remove("STEWARD_CONFIG")
            .current_dir(dir.path())
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(30), run).await??;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let path = dir.path().join(file).display().to_string();
        ensure!(
            output.status.code() == Some(2)
                && stderr.contains("upstream vendor: ca_file")
                && stderr.contains(&path)
                && stderr.contains(problem),
            "{file}: {:?} {stderr}",
            output.status
        );
    }
    Ok(())
}
