//! The `baton` binary's HTTPS API: it serves the certificate it was given,
//! a SIGHUP makes it serve the certificate now in its files (open
//! connections unaffected, nothing restarted).

use std::net::SocketAddr;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::ports::free_port;
use baton_e2e::{tls, wait};

#[tokio::test]
async fn sighup_makes_baton_serve_the_certificate_now_in_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    let (first_pem, first_key, first) = tls::self_signed(&["localhost"]);
    std::fs::write(&cert, first_pem).unwrap();
    std::fs::write(&key, first_key).unwrap();
    let https_port = free_port();
    let baton = BatonProcess::start(
        Master::Local,
        &dir.path().join("baton"),
        &[
            "--https_port",
            &https_port.to_string(),
            "--ssl_cert",
            cert.to_str().unwrap(),
            "--ssl_key",
            key.to_str().unwrap(),
            // Only SIGHUP reloads: the test tells the two apart.
            "--ssl_reload_interval",
            "0",
        ],
    )
    .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], https_port));
    let answer = tls::get(addr, &first, "localhost", "/v2/apps", None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.leaf, first);
    assert!(answer.body.contains("\"apps\""), "{}", answer.body);

    let (second_pem, second_key, second) = tls::self_signed(&["localhost"]);
    std::fs::write(&key, second_key).unwrap();
    std::fs::write(&cert, second_pem).unwrap();
    // Without a SIGHUP the old pair stays in service.
    let still = tls::get(addr, &first, "localhost", "/ping", None)
        .await
        .unwrap();
    assert_eq!(still.leaf, first);

    let pid = nix::unistd::Pid::from_raw(baton.pid().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let served = wait::until(Duration::from_secs(20), "the new certificate", || async {
        tls::get(addr, &second, "localhost", "/ping", None)
            .await
            .ok()
            .filter(|a| a.status == 200)
    })
    .await;
    assert_eq!(served.leaf, second);
    assert_eq!(
        baton.log_lines_with("HTTPS certificate reloaded"),
        1,
        "{}",
        baton.log_tail()
    );
    // The process lived through the signal and still answers plain HTTP.
    let (status, _) = baton.get("/v2/apps").await;
    assert_eq!(status, 200);
    baton.stop().await;
}
