//! A secured master, as Mesos 1.12 with `--authenticate_http_frameworks`,
//! `--authenticate_http_readwrite`/`readonly`, `--credentials`, `--acls`
//! and `LIBPROCESS_SSL_*`: 401s and their realm, the principal checks,
//! ACL refusals, https.

use super::common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use mesos_local::{Acls, ClusterConfig, Credentials, SecurityConfig, TlsConfig};
use mesos_proto::scheduler::{Event, call, event};
use mesos_proto::v1::{self, framework_info::capability};
use mesos_proto::{Encoding, util};
use reqwest::StatusCode;
use rustls::pki_types::{CertificateDer, ServerName};

const SECRET: &str = "s3cret";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secured(tweak: impl FnOnce(&mut SecurityConfig)) -> impl FnOnce(&mut ClusterConfig) {
    move |c| {
        let mut s = SecurityConfig {
            credentials: Credentials::new([("baton", SECRET), ("ops", "0ps")]),
            ..Default::default()
        };
        tweak(&mut s);
        c.security = Some(s);
    }
}

/// A raw JSON SUBSCRIBE with `authorization`, if any.
async fn subscribe_raw(
    url: &str,
    info: &v1::FrameworkInfo,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut req = http()
        .post(format!("{url}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .body(Encoding::Json.encode(&subscribe_call(info)).unwrap());
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("request is answered")
}

/// The only event of a refused SUBSCRIBE (200, one ERROR, close).
async fn refusal(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await.unwrap();
    let records =
        mesos_proto::recordio::decode_chunked(&body, &[body.len().max(1)], 1 << 20).unwrap();
    assert_eq!(records.len(), 1);
    let ev: Event = Encoding::Json.decode(&records[0]).unwrap();
    assert_eq!(ev.r#type(), event::Type::Error);
    ev.error.unwrap().message
}

async fn assert_401(resp: reqwest::Response, realm: &str, what: &str) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        format!("Basic realm=\"{realm}\""),
        "{what}"
    );
    assert_eq!(resp.text().await.unwrap(), "401 Unauthorized.", "{what}");
}

fn state_framework(cluster: &mesos_local::LocalCluster, id: &str) -> serde_json::Value {
    cluster.state()["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("framework {id} not in state"))
}

#[tokio::test]
async fn scheduler_api_needs_valid_basic_credentials_and_the_matching_principal() {
    let (cluster, dir) =
        start_with(41500, secured(|s| s.authenticate_http_frameworks = true)).await;
    let url = cluster.master_url();
    let info = framework_info("auth", false, 0.0);

    // Missing, wrong and malformed credentials: 401 (never 500), with
    // Mesos's challenge and body, before anything else is looked at.
    let long = format!("Basic {}", "QUFB".repeat(16 * 1024));
    let bad = [
        None,
        Some(basic("baton", "wrong")),
        Some(basic("nobody", SECRET)),
        Some(basic("baton", SECRET).replace("Basic", "Bearer")),
        Some("Basic !!!not-base64!!!".to_string()),
        Some(basic("baton", SECRET).replace("Basic ", "Basic  ")),
        Some(format!("Basic {}", b64("no-colon-here"))),
        Some(long),
    ];
    for auth in &bad {
        let what = format!("{:.40?}", auth);
        assert_401(
            subscribe_raw(&url, &info, auth.as_deref()).await,
            "mesos-master-scheduler",
            &what,
        )
        .await;
    }
    let get = http()
        .get(format!("{url}/api/v1/scheduler"))
        .send()
        .await
        .unwrap();
    assert_401(get, "mesos-master-scheduler", "GET").await;
    // Read-only endpoints stay open without --authenticate_http_readonly.
    let state = http()
        .get(format!("{url}/master/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), StatusCode::OK);

    // A FrameworkInfo naming another principal: 400, Mesos's text.
    let mut claims_ops = info.clone();
    claims_ops.principal = Some("ops".into());
    let resp = subscribe_raw(&url, &claims_ops, Some(&basic("baton", SECRET))).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.text().await.unwrap(),
        "Failed to validate scheduler::Call: Authenticated principal 'baton' does not match \
         principal 'ops' set in `FrameworkInfo`"
    );

    // No principal in FrameworkInfo: the authenticated one is recorded.
    let s = Sched::subscribe_as(
        &url,
        Encoding::Json,
        info.clone(),
        Some(basic("baton", SECRET)),
    )
    .await;
    assert_eq!(
        state_framework(&cluster, &s.framework_id)["principal"],
        "baton"
    );
    s.send(s.call(call::Type::Revive)).await;

    // Later calls: the same credentials; another principal's are a 400.
    let anonymous = s.call(call::Type::Revive);
    let resp = http()
        .post(format!("{url}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", &s.stream_id)
        .body(Encoding::Json.encode(&anonymous).unwrap())
        .send()
        .await
        .unwrap();
    assert_401(resp, "mesos-master-scheduler", "REVIVE without credentials").await;
    let resp = http()
        .post(format!("{url}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", &s.stream_id)
        .header("Authorization", basic("ops", "0ps"))
        .body(Encoding::Json.encode(&anonymous).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.text().await.unwrap(),
        "Authenticated principal 'ops' does not match principal 'baton' set in `FrameworkInfo`"
    );
    drop(s);
    stop(cluster, dir.path()).await;
}

#[allow(deprecated)] // `role`: how a non-MULTI_ROLE framework names its role
fn with_role(name: &str, role: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        role: Some(role.into()),
        ..framework_info(name, false, 0.0)
    }
}

#[tokio::test]
async fn acls_refuse_roles_the_principal_may_not_register_with() {
    // baton may use `dev` and nothing else; everyone else anything.
    let acls = Acls::load(
        r#"{"register_frameworks":[
            {"principals":{"values":["baton"]},"roles":{"values":["dev"]}},
            {"principals":{"values":["baton"]},"roles":{"type":"NONE"}}]}"#,
    )
    .unwrap();
    let (cluster, dir) = start_with(
        41800,
        secured(|s| {
            s.authenticate_http_frameworks = true;
            s.acls = Some(acls);
        }),
    )
    .await;
    let url = cluster.master_url();
    let baton = basic("baton", SECRET);

    // As Mesos: a refused SUBSCRIBE is a 200 whose only event is the ERROR.
    let resp = subscribe_raw(&url, &with_role("p", "prod"), Some(&baton)).await;
    assert_eq!(
        refusal(resp).await,
        "Not authorized to register framework  with roles { prod }"
    );
    let mut multi = framework_info("m", false, 0.0);
    multi
        .capabilities
        .push(capability(capability::Type::MultiRole));
    multi.roles = vec!["dev".into(), "prod".into()];
    let resp = subscribe_raw(&url, &multi, Some(&baton)).await;
    assert_eq!(
        refusal(resp).await,
        "Not authorized to register framework  with roles { dev, prod }"
    );
    // Another principal is not limited.
    let ops = Sched::subscribe_as(
        &url,
        Encoding::Json,
        with_role("o", "prod"),
        Some(basic("ops", "0ps")),
    )
    .await;

    // The allowed role subscribes; switching to a refused one is a 403.
    let s = Sched::subscribe_as(&url, Encoding::Protobuf, with_role("d", "dev"), Some(baton)).await;
    assert_eq!(state_framework(&cluster, &s.framework_id)["role"], "dev");
    let mut update = s.call(call::Type::UpdateFramework);
    update.update_framework = Some(call::UpdateFramework {
        framework_info: with_role("d", "prod"),
        ..Default::default()
    });
    let info = &mut update.update_framework.as_mut().unwrap().framework_info;
    info.id = Some(util::framework_id(&s.framework_id));
    info.principal = Some("baton".into());
    let (status, body) = s.post(&update).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        format!(
            "Not authorized to register framework {} with roles {{ prod }}",
            s.framework_id
        )
    );
    assert_eq!(state_framework(&cluster, &s.framework_id)["role"], "dev");
    drop(ops);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn readwrite_and_readonly_endpoints_authenticate_in_their_own_realms() {
    let (cluster, dir) = start_with(
        42100,
        secured(|s| {
            s.authenticate_http_readwrite = true;
            s.authenticate_http_readonly = true;
        }),
    )
    .await;
    let url = cluster.master_url();
    // The scheduler realm is not authenticated: no credentials needed.
    let mut s = Sched::subscribe(&url, Encoding::Json, framework_info("t", false, 0.0)).await;
    assert!(
        state_framework(&cluster, &s.framework_id)
            .get("principal")
            .is_none()
    );

    let framework_id = s.framework_id.clone();
    let teardown = |auth: Option<String>| {
        let mut req = http()
            .post(format!("{url}/master/teardown"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("frameworkId={framework_id}"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send()
    };
    assert_401(
        teardown(None).await.unwrap(),
        "mesos-master-readwrite",
        "teardown",
    )
    .await;
    assert_401(
        teardown(Some(basic("ops", "wrong"))).await.unwrap(),
        "mesos-master-readwrite",
        "teardown, wrong secret",
    )
    .await;
    assert!(
        cluster.state()["frameworks"][0]["active"]
            .as_bool()
            .unwrap()
    );
    let state = |auth: Option<String>| {
        let mut req = http().get(format!("{url}/master/state"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send()
    };
    assert_401(state(None).await.unwrap(), "mesos-master-readonly", "state").await;
    assert_eq!(
        state(Some(basic("ops", "0ps"))).await.unwrap().status(),
        StatusCode::OK
    );
    let health = http().get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let resp = teardown(Some(basic("ops", "0ps"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    while s.next().await.is_some() {}
    eventually("framework completed", || {
        cluster.state()["completed_frameworks"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let resp = teardown(Some(basic("ops", "0ps"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.text().await.unwrap(),
        "No framework found with specified ID"
    );
    let resp = http()
        .post(format!("{url}/master/teardown"))
        .header("Authorization", basic("ops", "0ps"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.text().await.unwrap(),
        "Missing 'frameworkId' query parameter in the request body"
    );
    stop(cluster, dir.path()).await;
}

/// An https connection trusting only `root`, or the handshake's error.
struct Https {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Https {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Https {
    async fn connect(addr: SocketAddr, root: &CertificateDer<'static>) -> Result<Https, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Https { sender, conn })
    }

    async fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
    ) -> hyper::Response<hyper::body::Incoming> {
        tokio::time::timeout(DEADLINE, self.sender.send_request(req))
            .await
            .expect("answered in time")
            .expect("answered")
    }
}

/// The first record of a streamed body, as an event.
async fn first_event(body: &mut hyper::body::Incoming) -> Event {
    let mut decoder = mesos_proto::recordio::Decoder::new(1 << 20);
    loop {
        if let Some(record) = decoder.next_record().unwrap() {
            return Encoding::Json.decode(&record).unwrap();
        }
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("a record in time")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            decoder.feed(&data);
        }
    }
}

#[tokio::test]
async fn tls_master_serves_https_only_to_clients_trusting_its_certificate() {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let pem_dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (
        pem_dir.path().join("cert.pem"),
        pem_dir.path().join("key.pem"),
    );
    std::fs::write(&cert_file, made.cert.pem()).unwrap();
    std::fs::write(&key_file, made.signing_key.serialize_pem()).unwrap();
    let tls = TlsConfig::from_pem_files(&cert_file, &key_file).unwrap();
    let (cluster, dir) = start_with(
        42400,
        secured(|s| {
            s.authenticate_http_frameworks = true;
            s.tls = Some(tls);
        }),
    )
    .await;
    let addr = cluster.master_addr();
    assert_eq!(cluster.master_url(), format!("https://{addr}"));

    // Plain HTTP gets no answer.
    let plain = http()
        .get(format!("http://{addr}/master/state"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client trusting some other certificate refuses the handshake.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let refused = Https::connect(addr, stranger.cert.der()).await;
    assert!(refused.is_err());

    let mut client = Https::connect(addr, made.cert.der()).await.unwrap();
    let subscribe = hyper::Request::post("/api/v1/scheduler")
        .header("Host", addr.to_string())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("Authorization", basic("baton", SECRET))
        .body(Full::new(Bytes::from(
            Encoding::Json
                .encode(&subscribe_call(&framework_info("tls", false, 0.0)))
                .unwrap(),
        )))
        .unwrap();
    let resp = client.send(subscribe).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let subscribed = first_event(&mut body).await;
    assert_eq!(
        subscribed.r#type(),
        event::Type::Subscribed,
        "{subscribed:?}"
    );
    let id = subscribed.subscribed.unwrap().framework_id.value;
    assert_eq!(state_framework(&cluster, &id)["principal"], "baton");

    // The redirect stays scheme-less, as Mesos's.
    let mut other = Https::connect(addr, made.cert.der()).await.unwrap();
    let redirect = hyper::Request::get("/master/redirect")
        .header("Host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = other.send(redirect).await;
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(resp.headers()["location"], format!("//{addr}").as_str());

    // Shutdown with an https stream open still completes.
    tokio::time::timeout(DEADLINE, stop(cluster, dir.path()))
        .await
        .expect("the cluster stops in time");
    drop((body, client, other));
}

/// `/master/state` over HTTP, with `authorization` if any.
async fn http_state(url: &str, authorization: Option<&str>) -> serde_json::Value {
    let mut req = http().get(format!("{url}/master/state"));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn framework_names(state: &serde_json::Value) -> Vec<String> {
    state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn user(name: &str, user: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        user: user.into(),
        ..framework_info(name, false, 0.0)
    }
}

#[tokio::test]
async fn run_tasks_refuses_a_launch_with_mesos_task_error_and_view_tasks_hides_tasks() {
    ensure_baton_executor();
    // baton may run tasks as `app` only; ops may view everything, baton
    // its frameworks but no tasks.
    let acls = Acls::load(
        r#"{"permissive": false,
            "register_frameworks": [{"principals": {"values": ["baton"]}, "roles": {"type": "ANY"}}],
            "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}],
            "run_tasks": [{"principals": {"values": ["baton"]}, "users": {"values": ["app"]}}],
            "view_frameworks": [{"principals": {"values": ["ops", "baton"]}, "users": {"type": "ANY"}}],
            "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]}"#,
    )
    .unwrap();
    assert!(acls.ignored.is_empty(), "{:?}", acls.ignored);
    let (cluster, dir) = start_with(
        43300,
        secured(|s| {
            s.authenticate_http_frameworks = true;
            s.authenticate_http_readonly = true;
            s.acls = Some(acls);
        }),
    )
    .await;
    let url = cluster.master_url();
    let mut s = Sched::subscribe_as(
        &url,
        Encoding::Json,
        user("runner", "root"),
        Some(basic("baton", SECRET)),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    // As root (FrameworkInfo.user): refused, before any validation.
    let denied = command_task("denied", &offer, "sleep 30");
    let mut allowed = command_task("allowed", &offer, "sleep 30");
    allowed.command.as_mut().unwrap().user = Some("app".into());
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![denied, allowed])],
        None,
    )
    .await;
    let error = s.update("denied").await;
    assert_eq!(error.state(), v1::TaskState::TaskError);
    assert_eq!(error.reason(), v1::task_status::Reason::TaskUnauthorized);
    assert_eq!(error.source(), v1::task_status::Source::Master);
    assert!(error.uuid.is_none());
    assert_eq!(
        error.message(),
        format!(
            "Principal 'baton' no authorized to launch task denied of framework {} under user 'root'",
            s.framework_id
        )
    );
    loop {
        let u = s.update("allowed").await;
        if u.uuid.is_some() {
            s.ack(&u).await;
        }
        if u.state() == v1::TaskState::TaskRunning {
            break;
        }
        assert_eq!(u.state(), v1::TaskState::TaskStarting, "{u:?}");
    }
    // The refused task is nowhere: never launched, never tracked.
    let full = state_framework(&cluster, &s.framework_id);
    let ids: Vec<&str> = ["tasks", "completed_tasks"]
        .iter()
        .flat_map(|k| full[k].as_array().unwrap())
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["allowed"]);

    // view_tasks: ops sees the task, baton the framework without it.
    let ops = http_state(&url, Some(&basic("ops", "0ps"))).await;
    assert_eq!(ops["frameworks"][0]["tasks"][0]["id"], "allowed");
    let own = http_state(&url, Some(&basic("baton", SECRET))).await;
    assert_eq!(framework_names(&own), ["runner"]);
    assert_eq!(own["frameworks"][0]["tasks"], serde_json::json!([]));
    drop(s);
    stop(cluster, dir.path()).await;
}

/// Neither of the next two tests ever has an agent (their registration is
/// refused), so no task ever binds a port of their shared range.
const NO_AGENTS_PORTS: u16 = 43600;

#[tokio::test]
async fn register_agents_refuses_agents_without_a_principal_and_nothing_is_offered() {
    // What a real master does with only register_frameworks and
    // permissive false: mesos-local's agents have no principal.
    let acls = Acls::load(
        r#"{"permissive": false,
            "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}"#,
    )
    .unwrap();
    let (cluster, dir) = start_with(NO_AGENTS_PORTS, secured(|s| s.acls = Some(acls))).await;
    let url = cluster.master_url();
    eventually("every agent refused", || {
        cluster.state()["slaves"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    })
    .await;
    let mut s = Sched::subscribe(&url, Encoding::Json, framework_info("idle", false, 0.0)).await;
    assert!(
        !s.sees(NO_OFFER_WINDOW, |e| e.r#type() == event::Type::Offers)
            .await,
        "an offer without agents"
    );
    let state = http_state(&url, None).await;
    assert_eq!(state["slaves"], serde_json::json!([]));
    for k in [
        "activated_slaves",
        "deactivated_slaves",
        "unreachable_slaves",
    ] {
        assert_eq!(state[k], 0, "{k}");
    }
    // The framework is registered, though this anonymous reader is not
    // allowed to see it (no view_frameworks rule, not permissive).
    assert_eq!(framework_names(&state), Vec::<String>::new());
    assert_eq!(state_framework(&cluster, &s.framework_id)["name"], "idle");
    // An agent that goes down and comes back asks again: refused again.
    let faults = cluster.faults();
    faults.stop_agent(1).await;
    faults.start_agent(1).await;
    assert!(
        !s.sees(NO_OFFER_WINDOW, |e| e.r#type() == event::Type::Offers)
            .await,
        "an offer from a restarted agent"
    );
    let state = cluster.state();
    assert_eq!(state["slaves"], serde_json::json!([]));
    assert_eq!(state["unreachable_slaves"], 0);
    drop(s);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn view_frameworks_hides_frameworks_from_readers_it_does_not_allow() {
    // ops sees every framework; anyone (an unauthenticated reader too)
    // those of the user `public`.
    const ACLS: &str = r#"{"permissive": false,
        "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
        "view_frameworks": [
            {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "users": {"values": ["public"]}}]}"#;
    for readonly in [false, true] {
        let acls = Acls::load(ACLS).unwrap();
        let (cluster, dir) = start_with(
            NO_AGENTS_PORTS,
            secured(|s| {
                s.authenticate_http_readonly = readonly;
                s.acls = Some(acls);
            }),
        )
        .await;
        let url = cluster.master_url();
        let root = Sched::subscribe(&url, Encoding::Json, user("root-fw", "root")).await;
        let public = Sched::subscribe(&url, Encoding::Json, user("public-fw", "public")).await;
        let mut all = framework_names(&cluster.state());
        all.sort();
        assert_eq!(all, ["public-fw", "root-fw"]);
        if readonly {
            let ops = http_state(&url, Some(&basic("ops", "0ps"))).await;
            let mut seen = framework_names(&ops);
            seen.sort();
            assert_eq!(seen, ["public-fw", "root-fw"]);
            let baton = http_state(&url, Some(&basic("baton", SECRET))).await;
            assert_eq!(framework_names(&baton), ["public-fw"]);
        } else {
            // Without --authenticate_http_readonly there is no principal:
            // credentials sent anyway are not looked at.
            for auth in [None, Some(basic("ops", "0ps"))] {
                let state = http_state(&url, auth.as_deref()).await;
                assert_eq!(framework_names(&state), ["public-fw"], "{auth:?}");
            }
        }
        drop((root, public));
        stop(cluster, dir.path()).await;
    }
}
