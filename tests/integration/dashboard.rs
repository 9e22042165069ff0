//! The dashboard's files as the real binary serves them: content types, the Content-Security-
//! Policy and nosniff on each, and the page wired to its own script and stylesheet. (What a
//! person sees in a browser is tested by tests/browser/run.sh in headless Chromium.)

use crate::common;

use reqwest::StatusCode;

use common::{Backend, InProcess, TestDb};

#[tokio::test]
async fn dashboard_assets_are_served_with_a_strict_policy() -> anyhow::Result<()> {
    // The files are compiled in and touch no database: one engine is enough.
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    let client = crate::common::http_client();

    for (path, content_type, marker) in [
        ("/", "text/html", "<script src=\"app.js\" defer></script>"),
        (
            "/index.html",
            "text/html",
            "<link rel=\"stylesheet\" href=\"app.css\">",
        ),
        ("/app.js", "text/javascript", "textContent"),
        ("/app.css", "text/css", ".banner"),
    ] {
        let response = client
            .get(format!("{}{path}", server.base_url))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            header("content-type").starts_with(content_type),
            "{path}: content-type {}",
            header("content-type")
        );
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe"), "{path}: CSP {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let body = response.text().await?;
        assert!(body.contains(marker), "{path}: body lacks {marker:?}");
    }

    // The dashboard sits beside the API and MCP, not over them.
    let api = client
        .get(format!("{}/api/sessions", server.base_url))
        .send()
        .await?;
    assert_eq!(api.status(), StatusCode::OK);
    let missing = client
        .get(format!("{}/no-such-page", server.base_url))
        .send()
        .await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    server.stop().await;
    Ok(())
}

/// The Connect view's stdio command is the README's: `steward stdio` on the default database,
/// the one `serve` uses, so the assistant sees the same board as the dashboard.
#[tokio::test]
async fn the_stdio_snippet_uses_the_database_serve_uses() -> anyhow::Result<()> {
    const README_COMMAND: &str = "claude mcp add steward -- steward stdio";
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(README_COMMAND),
        "the README's stdio command changed"
    );

    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    let script = crate::common::http_client()
        .get(format!("{}/app.js", server.base_url))
        .send()
        .await?
        .text()
        .await?;
    server.stop().await;
    assert!(
        script.contains(&format!("'{README_COMMAND}'")),
        "the dashboard's stdio snippet is not the README's {README_COMMAND:?}"
    );
    Ok(())
}
