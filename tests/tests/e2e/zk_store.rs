//! The ZooKeeper store against a real ZooKeeper (Debian's `zookeeper`):
//! records round-trip one znode each, large ones compressed; a batch is
//! atomic; a stale version fails the whole batch (optimistic concurrency);
//! and a store whose fence (the leader's election znode) is gone writes
//! nothing.

use std::time::Duration;

use baton::state::{Category, Change, GroupError, Store, StoreError, ZkStore};
use baton::zk::ZkUrl;
use baton_e2e::zookeeper::ZooKeeper;
use zookeeper_client as zk;

async fn session(server: &ZooKeeper, path: &str) -> zk::Client {
    ZkUrl::parse(&server.url(path))
        .unwrap()
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}

fn put(category: Category, key: &str, value: &[u8]) -> Change {
    Change::Put {
        category,
        key: key.into(),
        value: value.to_vec(),
    }
}

/// `apply` blocks on the runtime: run it as the reconcile loop does.
async fn apply(store: &std::sync::Arc<ZkStore>, changes: Vec<Change>) -> Result<(), StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.apply(&changes))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_one_znode_each_and_large_ones_compressed() {
    let server = ZooKeeper::start().await;
    let client = session(&server, "/baton").await;
    let store = std::sync::Arc::new(ZkStore::open(client.clone(), None).await.unwrap());
    assert!(store.load().unwrap().records.values().all(|r| r.is_empty()));

    // An app with a big environment: 400 kB of JSON.
    let env: serde_json::Map<String, serde_json::Value> = (0..4000)
        .map(|i| {
            (
                format!("VARIABLE_{i}"),
                format!("value number {i} of a large app").into(),
            )
        })
        .collect();
    let big = serde_json::to_vec(&serde_json::json!({"id": "/big", "env": env})).unwrap();
    assert!(big.len() > 200_000);
    apply(
        &store,
        vec![
            put(Category::App, "/big", &big),
            put(Category::App, "/prod/web", br#"{"id":"/prod/web"}"#),
            put(Category::Instance, "prod_web.instance-1", b"{}"),
            Change::framework_id(Some("fw-1")),
        ],
    )
    .await
    .unwrap();
    apply(
        &store,
        vec![
            put(Category::App, "/prod/web", br#"{"id":"/prod/web","v":2}"#),
            Change::delete(Category::Instance, "prod_web.instance-1"),
        ],
    )
    .await
    .unwrap();

    let apps = client.list_children("/state/apps").await.unwrap();
    assert_eq!(apps.len(), 2, "{apps:?}");
    let (stored, _) = client.get_data("/state/apps/%2Fbig").await.unwrap();
    println!("a {} byte app is a {} byte znode", big.len(), stored.len());
    assert!(stored.len() < big.len() / 5, "compressed: {}", stored.len());

    // A new session reads back exactly what was written.
    let reread = ZkStore::open(session(&server, "/baton").await, None)
        .await
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(reread.records[&Category::App]["/big"], big);
    assert_eq!(
        reread.records[&Category::App]["/prod/web"],
        br#"{"id":"/prod/web","v":2}"#
    );
    assert!(reread.records[&Category::Instance].is_empty());
    assert_eq!(reread.records[&Category::Meta]["framework_id"], b"fw-1");
}

/// A group commit, blocking as the reconcile loop runs it.
async fn apply_group(
    store: &std::sync::Arc<ZkStore>,
    batches: Vec<Vec<Change>>,
) -> Result<(), GroupError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.apply_group(&batches))
        .await
        .unwrap()
}

/// `len` bytes gzip cannot shrink (xorshift noise).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The transaction (zxid) that last wrote each of `keys`' app records.
async fn written_by(client: &zk::Client, keys: &[&str]) -> Vec<i64> {
    let mut zxids = Vec::new();
    for key in keys {
        let (_, stat) = client
            .get_data(&format!(
                "/state/apps/{}",
                baton::state::zk_store::encode_key(key)
            ))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        zxids.push(stat.mzxid);
    }
    zxids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_is_one_multi_op_cut_only_between_writes() {
    let server = ZooKeeper::start().await;
    let client = session(&server, "/baton").await;
    let store = std::sync::Arc::new(ZkStore::open(client.clone(), None).await.unwrap());
    apply(&store, vec![put(Category::App, "/stale", b"1")])
        .await
        .unwrap();

    // Sixteen small writes: one transaction.
    let small: Vec<String> = (0..16).map(|i| format!("/small-{i}")).collect();
    apply_group(
        &store,
        small
            .iter()
            .map(|k| {
                vec![
                    put(Category::App, k, b"{}"),
                    put(Category::Deployment, k, b"{}"),
                ]
            })
            .collect(),
    )
    .await
    .unwrap();
    let keys: Vec<&str> = small.iter().map(String::as_str).collect();
    let zxids = written_by(&client, &keys).await;
    assert!(zxids.iter().all(|z| *z == zxids[0]), "{zxids:?}");

    // Four writes of 300 kB: past the request limit, cut between writes
    // (two and two); a fifth conflicts (another writer moved `/stale` on)
    // and is not written — the four before it are, and the error says so.
    let other = std::sync::Arc::new(
        ZkStore::open(session(&server, "/baton").await, None)
            .await
            .unwrap(),
    );
    apply(&other, vec![put(Category::App, "/stale", b"2")])
        .await
        .unwrap();
    let big: Vec<String> = (0..4).map(|i| format!("/big-{i}")).collect();
    let mut batches: Vec<Vec<Change>> = big
        .iter()
        .enumerate()
        .map(|(i, k)| {
            vec![put(
                Category::App,
                k,
                &noise(300_000, 0x2545_F491 + i as u64),
            )]
        })
        .collect();
    // (Big too, so that it cannot share the second multi-op.)
    batches.push(vec![
        put(Category::App, "/last", &noise(300_000, 7)),
        put(Category::App, "/stale", b"3"),
    ]);
    let failed = apply_group(&store, batches).await.unwrap_err();
    assert_eq!(failed.committed, 4, "{failed}");
    assert!(matches!(failed.error, StoreError::Conflict(_)), "{failed}");
    let keys: Vec<&str> = big.iter().map(String::as_str).collect();
    let zxids = written_by(&client, &keys).await;
    assert_eq!(zxids[0], zxids[1], "{zxids:?}");
    assert_eq!(zxids[2], zxids[3], "{zxids:?}");
    assert_ne!(zxids[1], zxids[2], "{zxids:?}");
    // The failed write left nothing, not even its first record.
    assert!(
        client
            .check_stat("/state/apps/%2Flast")
            .await
            .unwrap()
            .is_none()
    );
    let (stale, _) = client.get_data("/state/apps/%2Fstale").await.unwrap();
    assert_eq!(stale, b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_fails_the_whole_batch() {
    let server = ZooKeeper::start().await;
    let first = std::sync::Arc::new(
        ZkStore::open(session(&server, "/baton").await, None)
            .await
            .unwrap(),
    );
    apply(&first, vec![put(Category::App, "/a", b"1")])
        .await
        .unwrap();
    // A second writer reads, then the first changes the record.
    let second = std::sync::Arc::new(
        ZkStore::open(session(&server, "/baton").await, None)
            .await
            .unwrap(),
    );
    apply(&first, vec![put(Category::App, "/a", b"2")])
        .await
        .unwrap();
    let err = apply(
        &second,
        vec![
            put(Category::App, "/b", b"new"),
            put(Category::App, "/a", b"stale"),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let now = ZkStore::open(session(&server, "/baton").await, None)
        .await
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(now.records[&Category::App]["/a"], b"2");
    assert!(
        !now.records[&Category::App].contains_key("/b"),
        "nothing of the batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_deposed_leader_writes_nothing() {
    let server = ZooKeeper::start().await;
    let leader = session(&server, "/baton").await;
    let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    leader
        .mkdir(
            "/leader",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    leader
        .create("/leader/me", b"127.0.0.1:1", &options)
        .await
        .unwrap();
    let store = std::sync::Arc::new(
        ZkStore::open(leader.clone(), Some("/leader/me".into()))
            .await
            .unwrap(),
    );
    apply(&store, vec![put(Category::App, "/a", b"while leading")])
        .await
        .unwrap();

    // Its election znode goes (as when its session expires).
    let other = session(&server, "/baton").await;
    other.delete("/leader/me", None).await.unwrap();
    let err = apply(
        &store,
        vec![
            put(Category::App, "/a", b"after"),
            put(Category::App, "/z", b"x"),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    let (data, _) = other.get_data("/state/apps/%2Fa").await.unwrap();
    assert_eq!(data, b"while leading");
    assert!(
        other
            .check_stat("/state/apps/%2Fz")
            .await
            .unwrap()
            .is_none()
    );
}
