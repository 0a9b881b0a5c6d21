//! The UI's files, compiled into the binary, and their routes: `/` (and
//! `/ui/`) is the page, `/ui/<name>` each script, style and icon.
//!
//! Each answer carries its content type, `X-Content-Type-Options:
//! nosniff`, an `ETag` (the start of the file's SHA-256) and
//! `Cache-Control: no-cache`: the URLs stay the same across releases, so a
//! browser must revalidate, and a 304 makes that cheap. The page also
//! carries a Content-Security-Policy that allows scripts, styles and
//! connections from this origin only, and no framing (a destroy button in
//! someone else's frame would be a clickjacking target).

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("web/", $file)),
        }
    };
}

/// Every file the UI is made of.
pub const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/ui/style.css", "style.css", CSS),
    asset!("/ui/icon.svg", "icon.svg", SVG),
    asset!("/ui/main.js", "main.js", JS),
    asset!("/ui/api.js", "api.js", JS),
    asset!("/ui/events.js", "events.js", JS),
    asset!("/ui/store.js", "store.js", JS),
    asset!("/ui/dom.js", "dom.js", JS),
    asset!("/ui/apps.js", "apps.js", JS),
    asset!("/ui/pods.js", "pods.js", JS),
    asset!("/ui/app.js", "app.js", JS),
    asset!("/ui/create.js", "create.js", JS),
    asset!("/ui/deployments.js", "deployments.js", JS),
    asset!("/ui/eventlog.js", "eventlog.js", JS),
    asset!("/ui/traffic.js", "traffic.js", JS),
    asset!("/ui/diff.js", "diff.js", JS),
    asset!("/ui/chart.js", "chart.js", JS),
];

/// The page's Content-Security-Policy: everything from this origin, inline
/// nothing (styles set from scripts through the CSSOM are not inline).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Hex digits of the SHA-256 in an ETag: plenty to tell releases apart.
const ETAG_DIGITS: usize = 16;

/// Each asset's ETag, in [`ASSETS`] order, hashed on first use.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = ring::digest::digest(&ring::digest::SHA256, asset.body);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{}\"", &hex[..ETAG_DIGITS]))
                .expect("hex digits in quotes are a valid header value")
        })
        .collect()
});

/// The asset served at `path`, with its ETag.
pub fn find(path: &str) -> Option<(&'static Asset, HeaderValue)> {
    let index = ASSETS.iter().position(|a| a.path == path)?;
    Some((&ASSETS[index], ETAGS[index].clone()))
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags match too,
/// as RFC 9110 asks for this header.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// The answer for the asset at `path` (200 or 304).
fn serve(path: &'static str, headers: &HeaderMap) -> Response {
    let Some((asset, etag)) = find(path) else {
        return super::json_error(StatusCode::NOT_FOUND, "URI not found");
    };
    let mut response = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let out = response.headers_mut();
    out.insert(header::ETAG, etag);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.content_type == HTML {
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        out.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// A route for every asset, and `/ui/` for the page too. One route per
/// file rather than a wildcard, so that other `/ui/…` routes (the UI's
/// API) never clash with it and unknown names fall to the API's 404.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(
        "/ui/",
        get(|headers: HeaderMap| async move { serve("/", &headers) }),
    );
    for asset in ASSETS {
        let path = asset.path;
        router = router.route(
            path,
            get(move |headers: HeaderMap| async move { serve(path, &headers) }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_type_a_body_and_its_own_path() {
        let mut paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            assert!(std::str::from_utf8(asset.body).is_ok(), "{}", asset.path);
        }
    }

    #[test]
    fn every_module_the_scripts_import_is_served() {
        // `import … from "./x.js"` must name an asset, or the page breaks
        // in the browser only.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let name = line
                    .rsplit("from")
                    .next()
                    .unwrap()
                    .trim()
                    .trim_end_matches(';')
                    .trim_matches('"');
                let path = format!("/ui/{}", name.trim_start_matches("./"));
                assert!(
                    find(&path).is_some(),
                    "{} imports {name}, which is not served",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_loads_only_served_files() {
        let page = std::str::from_utf8(find("/").unwrap().0.body).unwrap();
        for reference in page.split('"').filter(|s| s.starts_with("/ui/")) {
            assert!(find(reference).is_some(), "index.html loads {reference}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn if_none_match_recognises_the_tag_in_a_list_and_weak_tags() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(not_modified(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\""));
        assert!(!not_modified(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&headers, &etag));
    }
}
