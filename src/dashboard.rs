//! The dashboard a person opens at `/`: three static files (`dashboard/`) compiled into the
//! binary, so it works offline and needs no CDN. The page reads the JSON API under `/api/` and
//! renders every client-supplied string as text (never as HTML); the Content-Security-Policy
//! below forbids inline scripts and every origin but this server's, as a second line of defence.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page's policy: only this server's own scripts, styles and API; no inline code, no
/// framing, no `<base>` rewriting, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// `/` (and `/index.html`), `/app.js`, `/app.css`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // Small files, and a new binary may bring new ones: revalidate each time.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_never_write_html_from_data() {
        // The page builds its DOM with createElement/textContent only; a stray innerHTML (or
        // its cousins) would be the first step towards rendering a hostile client name.
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(
                !APP_JS.contains(forbidden),
                "dashboard/app.js must not use {forbidden}"
            );
        }
        assert!(
            !INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="),
            "index.html must not carry inline scripts or styles (the CSP forbids them)"
        );
        for external in ["http://", "https://", "//cdn"] {
            assert!(
                !INDEX_HTML.contains(external) && !APP_CSS.contains(external),
                "the dashboard must not load anything from another origin ({external})"
            );
        }
    }
}
