//! The ZooKeeper test helper: a standalone server starts on a free
//! loopback port and answers; stopped, it no longer answers; started again
//! on the same port with the same data directory, it still holds what a
//! client wrote before.

use std::time::Duration;

use baton_e2e::zookeeper::ZooKeeper;
use zookeeper_client as zk;

/// A client on `connect` (a connect string, optionally with a chroot).
async fn client(connect: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(connect)
        .await
        .unwrap_or_else(|e| panic!("connect to ZooKeeper at {connect}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_stops_and_keeps_data_across_a_restart() {
    baton_e2e::init_tracing();
    let mut server = ZooKeeper::start().await;
    eprintln!("ZooKeeper started in {:?}", server.startup_time());
    let port = server.port();
    assert_eq!(server.connect_string(), format!("127.0.0.1:{port}"));
    assert_eq!(
        server.url("/baton/leader"),
        format!("zk://127.0.0.1:{port}/baton/leader")
    );
    assert_eq!(server.url("mesos"), format!("zk://127.0.0.1:{port}/mesos"));
    assert_eq!(
        server.four_letter_word("ruok").await.as_deref(),
        Some("imok")
    );
    assert!(server.is_serving().await);

    // A persistent node, written through a chrooted client.
    let root = client(&server.connect_string()).await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    root.create("/baton", b"", &options)
        .await
        .expect("create /baton");
    let chrooted = client(&format!("{}/baton", server.connect_string())).await;
    chrooted
        .create("/state", b"v1", &options)
        .await
        .expect("create /baton/state");
    let stat = chrooted
        .set_data("/state", b"v2", Some(0))
        .await
        .expect("set /baton/state");
    assert_eq!(stat.version, 1);
    drop(chrooted);
    drop(root);

    server.stop().await;
    assert!(!server.is_running());
    assert_eq!(server.four_letter_word("ruok").await, None);

    server.start_again().await;
    eprintln!("ZooKeeper started again in {:?}", server.startup_time());
    assert_eq!(server.port(), port);
    assert!(server.is_serving().await);
    let again = client(&server.connect_string()).await;
    let (data, stat) = again
        .get_data("/baton/state")
        .await
        .expect("/baton/state survives the restart");
    assert_eq!(data, b"v2");
    assert_eq!(stat.version, 1);
    drop(again);

    // Restarting a running server works too.
    server.start_again().await;
    assert!(server.is_serving().await);
}
