//! Helpers shared by this crate's integration tests. Each test binary
//! compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod fake_master;

use std::time::Duration;

use baton::config::{MasterSpec, Settings};
use baton::mesos::MasterEndpoint;
use mesos_proto::Encoding;

use fake_master::{Answer, FakeMaster};

/// Baton (in process, on port 0) subscribed to a fake master that answers
/// SUBSCRIBE as `framework_id` and heartbeats: for tests of the API.
pub struct BatonOnFakeMaster {
    /// The running Baton.
    pub running: baton::config::Running,
    /// The master, kept alive for the test.
    pub master: FakeMaster,
    /// Baton's data directory, kept for the test.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>` of the REST API.
    pub base: String,
    /// The settings Baton was started with.
    pub settings: Settings,
}

impl BatonOnFakeMaster {
    /// Starts it with `tune` applied to the settings, and waits until it is
    /// subscribed.
    pub async fn start(framework_id: &str, tune: impl FnOnce(&mut Settings)) -> BatonOnFakeMaster {
        let master = FakeMaster::start(
            Encoding::Protobuf,
            vec![Answer::Subscribed {
                framework_id: framework_id.into(),
                stream_id: "s".into(),
                heartbeat: Duration::from_secs(1),
                beat: true,
            }],
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(
            MasterSpec::Masters(vec![MasterEndpoint::parse(&master.url()).unwrap()]),
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
        );
        settings.mesos_user = "nobody".into();
        settings.failover_timeout = Duration::from_secs(60);
        tune(&mut settings);
        let running = baton::config::run(settings.clone(), |_| {}).await.unwrap();
        running
            .scheduler()
            .expect("leading alone")
            .wait_for(Duration::from_secs(10), |v| v.subscribed)
            .await
            .expect("subscribed");
        BatonOnFakeMaster {
            base: format!("http://{}", running.http_addr),
            running,
            master,
            dir,
            settings,
        }
    }
}
