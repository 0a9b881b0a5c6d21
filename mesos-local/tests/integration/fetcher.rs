//! The agents' fetcher: `https` URIs (verified against the system's roots
//! and `fetcher_ca_file`), redirects, `.zip`, `.tgz` and `.tar.xz`
//! extraction, `executable` and `output_file`; a download that fails is
//! the task's `TASK_FAILED` with `REASON_CONTAINER_LAUNCH_FAILED`.

use super::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use mesos_proto::Encoding;
use mesos_proto::v1::{self, TaskState, task_status::Reason};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// An HTTPS file server on 127.0.0.1: `/<name>` answers the file's bytes,
/// `/moved` redirects to `/app.tgz`; it counts requests per path. It
/// stops when dropped.
struct FileServer {
    addr: SocketAddr,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FileServer {
    async fn start(
        cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
        files: BTreeMap<String, Vec<u8>>,
    ) -> FileServer {
        let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert.der().to_vec())],
            key.into(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let files = Arc::new(files);
        let counted = hits.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, files, hits) = (acceptor.clone(), files.clone(), counted.clone());
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let path = req.uri().path().to_string();
                        *hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                        let answer = match (path.as_str(), files.get(path.trim_start_matches('/')))
                        {
                            ("/moved", _) => hyper::Response::builder()
                                .status(302)
                                .header("Location", "/app.tgz")
                                .body(Full::new(Bytes::new())),
                            (_, Some(body)) => hyper::Response::builder()
                                .body(Full::new(Bytes::from(body.clone()))),
                            (_, None) => hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new())),
                        };
                        async move { answer }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FileServer { addr, hits, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.addr.port())
    }
}

/// Runs `command` in `dir`, which must succeed.
fn run(dir: &Path, command: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{command}: {status}");
}

/// A zip, a gzipped and an xz'd tar and a script, as the server offers them.
fn artifacts(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    run(
        dir,
        "mkdir -p tgzdir xzdir && echo from-tgz > tgzdir/tgz.txt && echo from-xz > xzdir/xz.txt \
         && tar czf app.tgz tgzdir && tar cJf app.tar.xz xzdir \
         && python3 -c 'import zipfile; z = zipfile.ZipFile(\"app.zip\", \"w\"); z.writestr(\"zipped/hello.txt\", \"from-zip\\n\"); z.close()' \
         && printf '#!/bin/sh\\necho tool-ran\\n' > tool",
    );
    ["app.zip", "app.tgz", "app.tar.xz", "tool"]
        .into_iter()
        .map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

fn uri(value: String, output_file: Option<&str>, executable: bool) -> v1::command_info::Uri {
    v1::command_info::Uri {
        value,
        output_file: output_file.map(str::to_string),
        executable: Some(executable),
        ..Default::default()
    }
}

/// Acknowledges the task's updates until a terminal one, which it gives.
async fn terminal(s: &mut Sched, task_id: &str) -> v1::TaskStatus {
    loop {
        let u = s.update(task_id).await;
        s.ack(&u).await;
        if mesos_proto::util::is_terminal(u.state()) {
            return u;
        }
    }
}

#[tokio::test]
async fn https_archives_redirects_and_executables_are_fetched_as_mesos_fetches_them() {
    ensure_baton_executor();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, made.cert.pem()).unwrap();
    let files = artifacts(work.path());
    let trusted = FileServer::start(&made, files.clone()).await;
    let untrusted = FileServer::start(&stranger, files).await;

    let (cluster, dir) = start_with(24200, |c| c.fetcher_ca_file = Some(ca_file.clone())).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("fetcher", true, 60.0),
    )
    .await;
    let offers = s.offers_from(2).await;
    let mut fetched = command_task(
        "fetched",
        &offers[0],
        "cat zipped/hello.txt tgzdir/tgz.txt xzdir/xz.txt && test -x renamed-tool && ./renamed-tool",
    );
    fetched.command.as_mut().unwrap().uris = vec![
        uri(trusted.url("app.zip"), None, false),
        // Followed to /app.tgz; extracted as its output file says.
        uri(trusted.url("moved"), Some("redirected.tgz"), false),
        uri(trusted.url("app.tar.xz"), None, false),
        uri(trusted.url("tool"), Some("renamed-tool"), true),
    ];
    let mut refused = command_task("refused", &offers[1], "true");
    refused.command.as_mut().unwrap().uris = vec![uri(untrusted.url("tool"), None, true)];
    s.accept(
        vec![offers[0].id.clone()],
        vec![launch(vec![fetched])],
        None,
    )
    .await;
    s.accept(
        vec![offers[1].id.clone()],
        vec![launch(vec![refused])],
        None,
    )
    .await;

    let done = terminal(&mut s, "fetched").await;
    let sandbox_dir = sandbox(dir.path(), "fetched").await;
    let stdout = file_content(&sandbox_dir.join("stdout")).await;
    assert_eq!(
        done.state(),
        TaskState::TaskFinished,
        "{}; stdout: {stdout}; stderr: {}",
        done.message(),
        file_content(&sandbox_dir.join("stderr")).await
    );
    for line in ["from-zip", "from-tgz", "from-xz", "tool-ran"] {
        assert!(stdout.contains(line), "{line} missing from {stdout}");
    }
    let hits = trusted.hits.lock().unwrap().clone();
    assert_eq!(hits.get("/moved"), Some(&1), "{hits:?}");
    assert_eq!(hits.get("/app.tgz"), Some(&1), "{hits:?}");

    // A server the fetcher does not trust: the launch fails as Mesos's does,
    // the reason in the sandbox's stderr.
    let failed = terminal(&mut s, "refused").await;
    assert_eq!(failed.state(), TaskState::TaskFailed);
    assert_eq!(failed.reason(), Reason::ContainerLaunchFailed);
    assert!(
        failed.message().contains("Failed to fetch all URIs"),
        "{}",
        failed.message()
    );
    let refused_sandbox = sandbox(dir.path(), "refused").await;
    let stderr = file_content(&refused_sandbox.join("stderr")).await;
    assert!(stderr.contains("certificate"), "{stderr}");
    // Nothing of the failed download is left behind.
    assert!(
        !refused_sandbox.join("tool").exists(),
        "a failed download left its file in the sandbox"
    );
    stop(cluster, dir.path()).await;
}
