//! Baton in a secured cluster: an in-process mesos-local that serves its
//! API over TLS (a certificate generated here), authenticates frameworks
//! with HTTP Basic and authorizes roles with an ACL, as a Mesos master with
//! `--authenticate_http_frameworks`, `--acls` and libprocess SSL does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::mesos::MesosCredentials;
use baton_e2e::apps::{self, wait_view};
use baton_e2e::binaries::binary;
use baton_e2e::cluster::{fast_session, settings};
use baton_e2e::ports::{PORTS_PER_AGENT, port_range_start};
use baton_e2e::procs;
use baton_e2e::wait;
use mesos_local::{Acls, ClusterConfig, Credentials, LocalCluster, SecurityConfig, TlsConfig};
use mesos_proto::Encoding;

/// Only `baton` may register, and only with the role `web`. As on a real
/// master, a non-permissive ACL must also let the (principal-less) agents
/// register and `baton` run its tasks.
const ACLS: &str = r#"{
    "permissive": false,
    "register_frameworks": [
        {"principals": {"values": ["baton"]}, "roles": {"values": ["web", "*"]}}
    ],
    "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"values": ["baton"]}, "users": {"type": "ANY"}}]
}"#;

struct Secured {
    cluster: LocalCluster,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

async fn secured_cluster() -> Secured {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let ca = dir.path().join("master-ca.pem");
    std::fs::write(&ca, generated.cert.pem()).unwrap();
    let tls = TlsConfig::from_pem(
        generated.cert.pem().as_bytes(),
        generated.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let config = ClusterConfig {
        master_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        agents: 1,
        port_range_start: port_range_start(),
        ports_per_agent: PORTS_PER_AGENT,
        heartbeat_interval: Duration::from_millis(300),
        allocation_interval: Duration::from_millis(100),
        executor_path: binary("baton-executor"),
        work_dir: dir.path().join("mesos"),
        security: Some(SecurityConfig {
            authenticate_http_frameworks: true,
            credentials: Credentials::new([("baton", "right-secret")]),
            acls: Some(Acls::parse(ACLS).unwrap()),
            tls: Some(tls),
            ..SecurityConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let cluster = LocalCluster::start(config).await.unwrap();
    assert!(cluster.master_url().starts_with("https://"));
    Secured { cluster, dir, ca }
}

async fn start_baton(
    s: &Secured,
    name: &str,
    secret_file: &Path,
    ca: Option<&Path>,
    roles: &[&str],
) -> baton::config::Running {
    let mut settings = settings(
        &s.cluster.master_url(),
        &s.dir.path().join(name),
        Encoding::Protobuf,
    );
    settings.mesos_credentials = Some(MesosCredentials {
        principal: "baton".into(),
        secret_file: Some(secret_file.to_path_buf()),
    });
    settings.mesos_ca_file = ca.map(Path::to_path_buf);
    settings.mesos_roles = roles.iter().map(|r| r.to_string()).collect();
    settings.framework_name = name.into();
    baton::config::run(settings, fast_session).await.unwrap()
}

/// Waits until the session has failed at least twice (it keeps retrying)
/// and returns why it fails.
async fn failing_reason(running: &baton::config::Running) -> String {
    let scheduler = running.scheduler().expect("leading alone");
    let stats = scheduler.mesos().stats();
    wait::until(
        Duration::from_secs(20),
        "the subscription to fail twice",
        || {
            let failing = stats
                .subscribe_attempts
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2
                && stats.last_failure().is_some();
            async move { failing.then_some(()) }
        },
    )
    .await;
    assert!(!scheduler.view().subscribed);
    stats.last_failure().unwrap()
}

#[tokio::test]
async fn a_wrong_secret_fails_clearly_and_fixing_its_file_recovers_without_a_restart() {
    let s = secured_cluster().await;
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "wrong-secret\n").unwrap();
    let running = start_baton(&s, "auth", &secret, Some(&s.ca), &["*"]).await;
    let reason = failing_reason(&running).await;
    assert!(
        reason.contains("master refused our credentials (401)")
            && reason.contains("--mesos_authentication_secret_file"),
        "{reason}"
    );
    assert!(!reason.contains("wrong-secret"), "{reason}");

    std::fs::write(&secret, "right-secret\n").unwrap();
    let scheduler = running.scheduler().unwrap();
    wait_view(&scheduler, "a subscription with the fixed secret", |v| {
        v.subscribed
    })
    .await;
    assert_eq!(scheduler.mesos().stats().last_failure(), None);
    let state = s.cluster.state();
    let framework = &state["frameworks"][0];
    assert_eq!(framework["principal"], "baton");
    assert_eq!(framework["name"], "auth");
    // Calls after SUBSCRIBE carry the credentials too: a launch is
    // accepted, its updates acknowledged, all on the one subscription (a
    // call refused with 401 would have made the session subscribe again).
    let marker = procs::marker("mesos-auth");
    let subscriptions = scheduler
        .mesos()
        .stats()
        .subscriptions
        .load(std::sync::atomic::Ordering::Relaxed);
    apps::run(
        &scheduler,
        apps::app("/authed", &format!("sleep 600 # {marker}")),
    )
    .await;
    assert_eq!(
        scheduler
            .mesos()
            .stats()
            .subscriptions
            .load(std::sync::atomic::Ordering::Relaxed),
        subscriptions
    );
    apps::delete_all(&scheduler).await;
    running.stop().await;
    s.cluster.shutdown().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test]
async fn an_untrusted_master_certificate_is_a_clear_tls_error() {
    let s = secured_cluster().await;
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "right-secret").unwrap();
    let running = start_baton(&s, "tls", &secret, None, &["*"]).await;
    let reason = failing_reason(&running).await;
    assert!(
        reason.contains("TLS with master") && reason.contains("--mesos_ca_file"),
        "{reason}"
    );
    running.stop().await;
    s.cluster.shutdown().await;
}

#[tokio::test]
async fn the_masters_role_acl_refuses_a_role_it_does_not_allow_and_admits_one_it_does() {
    let s = secured_cluster().await;
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "right-secret").unwrap();
    let denied = start_baton(&s, "denied", &secret, Some(&s.ca), &["ops", "web"]).await;
    let reason = failing_reason(&denied).await;
    assert!(
        reason.contains("Not authorized to register framework")
            && reason.contains("ops")
            && reason.contains("--mesos_role"),
        "{reason}"
    );
    denied.stop().await;

    // MULTI_ROLE with roles the ACL allows.
    let allowed = start_baton(&s, "allowed", &secret, Some(&s.ca), &["web", "*"]).await;
    let scheduler = allowed.scheduler().unwrap();
    wait_view(&scheduler, "a MULTI_ROLE subscription", |v| v.subscribed).await;
    let state = s.cluster.state();
    let framework = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "allowed")
        .cloned()
        .unwrap();
    assert_eq!(framework["roles"], serde_json::json!(["web", "*"]));
    assert!(
        framework["capabilities"].to_string().contains("MULTI_ROLE"),
        "{framework}"
    );
    allowed.stop().await;
    s.cluster.shutdown().await;
}
