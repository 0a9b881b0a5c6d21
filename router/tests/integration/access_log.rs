//! Access logs through the router in-process: combined lines that a
//! strict parser reads back with the status, bytes and request each
//! request had; the apps that opt out left out; what is queued at
//! shutdown written; JSON lines; rotation by size within its bound.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_router::access_log::{Destination, Format, Settings};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::proxy::{DEADLINE, FakeMarathon, Router, app, config, full, http_server};

/// One combined line, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Combined {
    client: String,
    ident: String,
    user: String,
    time: String,
    method: String,
    target: String,
    protocol: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
}

/// A field up to the next space.
fn token<'a>(rest: &mut &'a str) -> &'a str {
    let (field, after) = rest.split_once(' ').expect("a space after a field");
    *rest = after;
    field
}

/// A double-quoted field with Apache's escapes (`\"`, `\\`, `\n`, `\t`,
/// `\xhh`…), unescaped; then the space or end after it.
fn quoted(rest: &mut &str) -> String {
    let mut chars = rest
        .strip_prefix('"')
        .expect("an opening quote")
        .char_indices();
    let mut out = Vec::new();
    loop {
        let (i, c) = chars.next().expect("a closing quote");
        match c {
            '"' => {
                // `i` counts from after the opening quote.
                assert_eq!(
                    rest.as_bytes().get(i + 2),
                    Some(&b' '),
                    "a space after: {rest}"
                );
                *rest = &rest[i + 3..];
                return String::from_utf8(out).expect("UTF-8 after unescaping");
            }
            '\\' => {
                let (_, e) = chars.next().expect("an escape");
                match e {
                    '"' => out.push(b'"'),
                    '\\' => out.push(b'\\'),
                    'n' => out.push(b'\n'),
                    't' => out.push(b'\t'),
                    'r' => out.push(b'\r'),
                    'b' => out.push(8),
                    'v' => out.push(11),
                    'x' => {
                        let hex: String = (0..2).map(|_| chars.next().unwrap().1).collect();
                        out.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
                    }
                    other => panic!("unknown escape \\{other}"),
                }
            }
            c if (' '..='~').contains(&c) => out.push(c as u8),
            c => panic!("a raw {c:?} in a quoted field"),
        }
    }
}

/// Parses a combined line strictly: every field present, in order, in
/// its form, nothing after the user agent.
fn parse_combined(line: &str) -> Combined {
    let mut rest = line;
    let client = token(&mut rest).to_string();
    client
        .parse::<std::net::IpAddr>()
        .unwrap_or_else(|_| panic!("an address first: {line}"));
    let ident = token(&mut rest).to_string();
    let user = token(&mut rest).to_string();
    let time = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .map(|(time, after)| {
            rest = after;
            time.to_string()
        })
        .unwrap_or_else(|| panic!("a [time]: {line}"));
    // dd/Mon/yyyy:HH:MM:SS +0000
    let t = time.as_bytes();
    assert_eq!(time.len(), 26, "{time}");
    let digits = |range: std::ops::Range<usize>| t[range].iter().all(u8::is_ascii_digit);
    assert!(digits(0..2) && digits(7..11) && digits(12..14), "{time}");
    assert!(digits(15..17) && digits(18..20), "{time}");
    assert!(
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
        ]
        .contains(&&time[3..6]),
        "{time}"
    );
    assert_eq!(
        (t[2], t[6], t[11], t[14], t[17]),
        (b'/', b'/', b':', b':', b':')
    );
    assert!(time.ends_with(" +0000"), "{time}");
    let request = quoted(&mut rest);
    let mut parts = request.split(' ');
    let (method, target, protocol) = (
        parts.next().unwrap().to_string(),
        parts.next().expect("a target").to_string(),
        parts.next().expect("a protocol").to_string(),
    );
    assert!(parts.next().is_none(), "three parts: {request}");
    assert!(protocol.starts_with("HTTP/"), "{protocol}");
    let status = token(&mut rest);
    assert!(status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()));
    let bytes = token(&mut rest);
    let referer = quoted(&mut rest);
    let user_agent = {
        // The last field: up to the end of the line.
        let mut last = rest.to_string();
        last.push(' ');
        let mut last = last.as_str();
        let value = quoted(&mut last);
        assert!(last.is_empty(), "nothing after the user agent: {line}");
        value
    };
    Combined {
        client,
        ident,
        user,
        time,
        method,
        target,
        protocol,
        status: status.parse().unwrap(),
        bytes: bytes.parse().expect("bytes as a number"),
        referer,
        user_agent,
    }
}

/// An instance answering `/missing` with 404, a POST with the size of its
/// body, anything else with `hello from <path>`.
async fn instance() -> std::net::SocketAddr {
    http_server(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_string();
        if path == "/missing" {
            return Response::builder().status(404).body(full("no")).unwrap();
        }
        if req.method() == hyper::Method::POST {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            return Response::new(full(format!("got {}", body.len())));
        }
        Response::new(full(format!("hello from {path}")))
    })
    .await
}

/// The lines of `path` (none while it does not exist).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// Polls until `path` holds `n` lines.
async fn until_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let lines = lines(path);
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "{lines:#?}");
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} lines in {}: {lines:#?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn settings(dir: &Path, format: Format) -> Settings {
    let mut settings = Settings::new(Destination::Directory(dir.to_path_buf()));
    settings.format = format;
    settings
}

#[tokio::test]
async fn combined_lines_parse_strictly_and_carry_each_requests_status_bytes_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let web = instance().await;
    let marathon = FakeMarathon::start(vec![
        app(
            "/shop/web",
            json!({"BATON_VHOST": "web.test"}),
            &[("web.1", web)],
        ),
        app(
            "/quiet",
            json!({"BATON_VHOST": "quiet.test", "BATON_ACCESS_LOG": "off"}),
            &[("quiet.1", web)],
        ),
    ])
    .await;
    let mut config = config(&marathon);
    config.access_log = Some(settings(&logs, Format::Combined));
    let router = Router::start(config).await;
    let url = |path: &str| format!("{}{path}", router.url);

    // What each request sent and got: method, target, status, body.
    let mut expected: Vec<(&str, &str, u16, String)> = Vec::new();
    let response = router
        .http
        .get(url("/hello?x=1&y=\"2\""))
        .header("Host", "web.test")
        .header("Referer", "http://ref.test/a \"quoted\" page")
        .header("User-Agent", "Tester/1.0 (\"quotes\" \\ and backslash)")
        .header(
            "Authorization",
            "Basic YWxpY2U6c2VjcmV0", // alice:secret
        )
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    expected.push(("GET", "/hello?x=1&y=%222%22", 200, body));
    let response = router
        .http
        .post(url("/orders"))
        .header("Host", "web.test")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    expected.push(("POST", "/orders", 200, response.text().await.unwrap()));
    let response = router
        .http
        .get(url("/missing"))
        .header("Host", "web.test")
        .send()
        .await
        .unwrap();
    expected.push(("GET", "/missing", 404, response.text().await.unwrap()));
    let response = router
        .http
        .head(url("/hello"))
        .header("Host", "web.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    expected.push(("HEAD", "/hello", 200, String::new()));
    for _ in 0..3 {
        let quiet = router
            .http
            .get(url("/"))
            .header("Host", "quiet.test")
            .send()
            .await
            .unwrap();
        assert_eq!(quiet.status(), 200);
    }

    let log = logs.join("shop_web.log");
    let parsed: Vec<Combined> = until_lines(&log, expected.len())
        .await
        .iter()
        .map(|l| parse_combined(l))
        .collect();
    for (line, (method, target, status, body)) in parsed.iter().zip(&expected) {
        assert_eq!(line.client, "127.0.0.1");
        assert_eq!(line.ident, "-");
        assert_eq!(
            (line.method.as_str(), line.target.as_str()),
            (*method, *target)
        );
        assert_eq!(line.protocol, "HTTP/1.1");
        assert_eq!(line.status, *status, "{line:?}");
        assert_eq!(line.bytes, body.len() as u64, "{line:?}");
    }
    let first = &parsed[0];
    assert_eq!(
        first.user, "alice",
        "the Basic user name, never the password"
    );
    assert_eq!(first.referer, "http://ref.test/a \"quoted\" page");
    assert_eq!(first.user_agent, "Tester/1.0 (\"quotes\" \\ and backslash)");
    assert!(first.time.len() == 26);
    let second = &parsed[1];
    assert_eq!((second.user.as_str(), second.referer.as_str()), ("-", "-"));
    assert_eq!(second.user_agent, "-", "no User-Agent sent");
    let raw = lines(&log).join("\n");
    assert!(!raw.contains("secret"), "{raw}");
    assert!(
        raw.contains("\"Tester/1.0 (\\\"quotes\\\" \\\\ and backslash)\""),
        "quotes and backslashes escaped: {raw}"
    );
    assert!(!logs.join("quiet.log").exists(), "an app that opted out");

    // Lines still queued when the router stops are written before it
    // returns.
    for i in 0..50 {
        let response = router
            .http
            .get(url(&format!("/last/{i}")))
            .header("Host", "web.test")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.text().await.unwrap(),
            format!("hello from /last/{i}")
        );
    }
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["accessLog"]["enabled"], true);
    assert_eq!(stats["accessLog"]["dropped"], 0);
    router.stop().await;
    let all = lines(&log);
    assert_eq!(all.len(), expected.len() + 50);
    let last = parse_combined(all.last().unwrap());
    assert_eq!(
        (last.status, last.bytes),
        (200, "hello from /last/49".len() as u64)
    );
    let targets: Vec<String> = all[expected.len()..]
        .iter()
        .map(|l| parse_combined(l).target)
        .collect();
    assert!((0..50).all(|i| targets.contains(&format!("/last/{i}"))));
}

#[tokio::test]
async fn json_lines_parse_and_files_rotate_within_their_bound() {
    let dir = tempfile::tempdir().unwrap();
    let web = instance().await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("web.1", web)],
    )])
    .await;
    let mut config = config(&marathon);
    let mut settings = settings(dir.path(), Format::Json);
    settings.max_bytes = 4096;
    settings.keep = 2;
    config.access_log = Some(settings);
    let router = Router::start(config).await;

    let requests = 200;
    for i in 0..requests {
        let response = router
            .http
            .get(format!("{}/item/{i}?q={i}", router.url))
            .header("Host", "web.test")
            .header("User-Agent", "json-test")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while router.admin("/_router/stats").await["accessLog"]["written"] != requests {
        assert!(tokio::time::Instant::now() < deadline, "lines written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["web.log", "web.log.1", "web.log.2"], "two kept");
    let mut seen = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= 4096, "{}: {size} bytes", file.display());
        for line in lines(file) {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(v["app"], "/web");
            assert_eq!(v["status"], 200);
            assert_eq!(v["method"], "GET");
            assert_eq!(v["userAgent"], "json-test");
            assert_eq!(v["host"], "web.test");
            assert_eq!(v["client"], "127.0.0.1");
            assert!(v["referer"].is_null() && v["user"].is_null());
            assert!(v["durationMs"].as_f64().unwrap() >= 0.0);
            assert!(v["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
            assert!(v["time"].as_str().unwrap().ends_with('Z'));
            let uri = v["uri"].as_str().unwrap();
            let i = uri
                .strip_prefix("/item/")
                .unwrap()
                .split('?')
                .next()
                .unwrap();
            assert_eq!(v["bytes"], format!("hello from /item/{i}").len());
            seen.push(i.parse::<u32>().unwrap());
        }
    }
    // The newest lines are kept, the oldest rotated away.
    seen.sort_unstable();
    seen.dedup();
    assert!(
        seen.len() < requests as usize / 2,
        "most rotated away: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&(requests - 1)), "{seen:?}");
    assert!(!seen.contains(&0), "{seen:?}");
    router.stop().await;
}
