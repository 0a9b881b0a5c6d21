//! The system endpoints over real HTTP on loopback: `/ping`, `/v2/info`,
//! `/v2/leader`, `/metrics`, Marathon's headers, and JSON errors for
//! unknown paths.

use super::support;

use support::fake_master::FakeMaster;

async fn start() -> (
    baton::config::Running,
    FakeMaster,
    tempfile::TempDir,
    String,
) {
    let b = support::BatonOnFakeMaster::start("fw-api", |_| {}).await;
    (b.running, b.master, b.dir, b.base)
}

#[tokio::test]
async fn ping_info_leader_and_metrics_answer_as_marathon() {
    let (running, master, _dir, base) = start().await;
    let http = reqwest::Client::new();

    let ping = http.get(format!("{base}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    let leader_header = ping.headers()["x-marathon-leader"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        leader_header,
        format!("http://127.0.0.1:{}", running.http_addr.port())
    );
    assert!(
        ping.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert_eq!(ping.text().await.unwrap(), "pong");
    let json_ping = http
        .get(format!("{base}/ping"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json_ping.text().await.unwrap(), "\"pong\"");
    let none = http
        .get(format!("{base}/ping"))
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 204);

    let info: serde_json::Value = http
        .get(format!("{base}/v2/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["frameworkId"], "fw-api");
    assert_eq!(info["marathon_config"]["framework_name"], "marathon");
    assert_eq!(info["http_config"]["http_port"], running.http_addr.port());
    assert!(
        info["version"].as_str().unwrap() >= "0.8.1",
        "dcos-cli compares the version"
    );

    let leader: serde_json::Value = http
        .get(format!("{base}/v2/leader"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        leader["leader"],
        format!("127.0.0.1:{}", running.http_addr.port())
    );

    let missing = http
        .get(format!("{base}/v2/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["message"], "URI not found");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("marathon_mesos_connected 1"), "{metrics}");
    assert!(
        metrics.contains("marathon_mesos_subscriptions_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"marathon_http_requests_total{route="/ping",status="200"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"marathon_http_requests_total{route="/v2/other",status="404"} 1"#),
        "{metrics}"
    );

    running.stop().await;
    master.stop();
}
