//! The ZooKeeper store: the same [`Store`] as the embedded one, replicated
//! by ZooKeeper, for HA (`--zk zk://h1:2181,h2:2181/baton`).
//!
//! Layout under the `--zk` path: `/state/<category>/<key>`, one znode per
//! record — never one growing blob — with `/` and `%` in keys written as
//! `%2F` and `%25`. Values above [`COMPRESS_ABOVE`] bytes are gzipped (a
//! JSON record never starts with gzip's magic bytes, so reading needs no
//! flag); a record that is still above [`MAX_RECORD`] is refused with its
//! key rather than hitting ZooKeeper's 1 MB limit.
//!
//! Each [`Store::apply`] is one multi-op (split only when it would pass
//! ZooKeeper's request limit, in order): creates for new records, and
//! `set_data` / `delete` with the version last read or written
//! (optimistic concurrency: a record changed behind our back fails the
//! whole batch with [`StoreError::Conflict`]). When the store belongs to a
//! leader, every multi-op starts with a check that the leader's election
//! znode still exists: a deposed leader — its session expired, its znode
//! gone — can write nothing (fencing). A group commit
//! ([`Store::apply_group`]) is one multi-op too while it fits that limit;
//! past it, it is cut between its batches only, so that each batch stays
//! atomic and a failure says exactly which batches were written.
//!
//! [`ZkStore::open`] reads everything up front (pipelined), so that
//! [`Store::load`] is a hand-over; `apply` blocks its thread on the
//! runtime, as the reconcile loop calls it from `spawn_blocking`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use tokio::runtime::Handle;
use tracing::debug;
use zookeeper_client as zk;

use super::{Category, Change, GroupError, Snapshot, Store, StoreError};

/// Values larger than this are gzipped.
pub const COMPRESS_ABOVE: usize = 512;
/// The largest (compressed) record accepted: well under ZooKeeper's 1 MB
/// (`jute.maxbuffer`), which also bounds the request carrying it.
pub const MAX_RECORD: usize = 512 * 1024;
/// A multi-op is cut before its payload passes this.
const MAX_MULTI_BYTES: usize = 768 * 1024;
/// Znodes read per multi-read while loading. Records are small, so a
/// batch's answer stays far below ZooKeeper's 1 MB limit; a batch whose
/// answer would not (several records near [`MAX_RECORD`]) fails and is
/// read again one znode at a time.
const READ_BATCH: usize = 256;
/// Multi-reads in flight while loading.
const READS_IN_FLIGHT: usize = 8;
/// The directory of all records.
pub const STATE_DIR: &str = "/state";

/// The ACL and mode of every record and directory.
fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// A key as a znode name.
pub fn encode_key(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

/// A znode name as the key.
pub fn decode_key(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

fn gzip_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// What a value looks like in ZooKeeper.
pub fn encode_value(value: &[u8]) -> Vec<u8> {
    if value.len() <= COMPRESS_ABOVE {
        return value.to_vec();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(value);
    encoder.finish().unwrap_or_else(|_| value.to_vec())
}

/// The value a znode holds.
pub fn decode_value(key: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if !gzip_magic(&stored) {
        return Ok(stored);
    }
    let mut value = Vec::new();
    flate2::read::GzDecoder::new(stored.as_slice())
        .read_to_end(&mut value)
        .map_err(|e| StoreError::Backend(format!("record {key:?} does not decompress: {e}")))?;
    Ok(value)
}

fn dir(category: Category) -> String {
    format!("{STATE_DIR}/{}", category.name())
}

fn record_path(category: Category, key: &str) -> String {
    format!("{}/{}", dir(category), encode_key(key))
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("ZooKeeper {what}: {e}"))
}

/// Records in ZooKeeper; see the module documentation.
pub struct ZkStore {
    client: zk::Client,
    /// The election znode writes are guarded by (a leader's store).
    fence: Option<String>,
    /// The znode version of every record, as last read or written.
    versions: Mutex<HashMap<(Category, String), i32>>,
    /// What `open` read, handed over by the first `load`.
    loaded: Mutex<Option<Snapshot>>,
    runtime: Handle,
}

impl std::fmt::Debug for ZkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkStore")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl ZkStore {
    /// Opens the store on `client` (chrooted at the `--zk` path), creating
    /// the directories, and reads every record. `fence`: the election znode
    /// that must exist for a write to happen.
    pub async fn open(client: zk::Client, fence: Option<String>) -> Result<ZkStore, StoreError> {
        for category in Category::ALL {
            match client.mkdir(&dir(category), &persistent()).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(backend("creating the state directories", e)),
            }
        }
        let (snapshot, versions) = load_all(&client).await?;
        Ok(ZkStore {
            client,
            fence,
            versions: Mutex::new(versions),
            loaded: Mutex::new(Some(snapshot)),
            runtime: Handle::current(),
        })
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<(Category, String), i32>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes one multi-op; returns the new versions to remember.
    async fn commit(
        &self,
        ops: &[Op],
    ) -> Result<Vec<((Category, String), Option<i32>)>, StoreError> {
        let mut writer = self.client.new_multi_writer();
        let offset = usize::from(self.fence.is_some());
        if let Some(fence) = &self.fence {
            writer
                .add_check_version(fence, -1)
                .map_err(|e| backend("building a write", e))?;
        }
        for op in ops {
            let added = match op {
                Op::Create { path, data, .. } => writer.add_create(path, data, &persistent()),
                Op::Set {
                    path,
                    data,
                    version,
                    ..
                } => writer.add_set_data(path, data, Some(*version)),
                Op::Delete { path, version, .. } => writer.add_delete(path, Some(*version)),
            };
            added.map_err(|e| backend("building a write", e))?;
        }
        match writer.commit().await {
            Ok(_) => Ok(ops.iter().map(Op::outcome).collect()),
            Err(zk::MultiWriteError::OperationFailed { index, source }) if index < offset => {
                Err(StoreError::Fenced(format!(
                    "this process no longer holds leadership ({}: {source})",
                    self.fence.as_deref().unwrap_or_default()
                )))
            }
            Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                let path = ops.get(index - offset).map_or("?", Op::path);
                Err(StoreError::Conflict(format!("{path}: {source}")))
            }
            Err(e) => Err(backend("write", e)),
        }
    }
}

/// One znode operation of a batch.
#[derive(Debug)]
enum Op {
    Create {
        id: (Category, String),
        path: String,
        data: Vec<u8>,
    },
    Set {
        id: (Category, String),
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Delete {
        id: (Category, String),
        path: String,
        version: i32,
    },
}

impl Op {
    fn path(&self) -> &str {
        match self {
            Op::Create { path, .. } | Op::Set { path, .. } | Op::Delete { path, .. } => path,
        }
    }

    fn size(&self) -> usize {
        match self {
            Op::Create { path, data, .. } | Op::Set { path, data, .. } => {
                path.len() + data.len() + 32
            }
            Op::Delete { path, .. } => path.len() + 16,
        }
    }

    /// The record's version after this op (`None`: gone).
    fn outcome(&self) -> ((Category, String), Option<i32>) {
        match self {
            Op::Create { id, .. } => (id.clone(), Some(0)),
            Op::Set { id, version, .. } => (id.clone(), Some(version + 1)),
            Op::Delete { id, .. } => (id.clone(), None),
        }
    }
}

/// The znode operations of `changes`, given the known `versions`: a put of
/// a new record creates it, of a known one sets it at its version; a delete
/// of a known record deletes it at its version (of an unknown one does
/// nothing). Changes to one key within the batch follow each other.
fn plan(
    changes: &[Change],
    versions: &HashMap<(Category, String), i32>,
) -> Result<Vec<Op>, StoreError> {
    let mut ops = Vec::with_capacity(changes.len());
    plan_onto(changes, versions, &mut HashMap::new(), &mut ops)?;
    Ok(ops)
}

/// [`plan`] of one batch among several: `current` carries what earlier
/// batches of the same group do to each record, so that a later batch
/// writes a record at the version the earlier one leaves it.
fn plan_onto(
    changes: &[Change],
    versions: &HashMap<(Category, String), i32>,
    current: &mut HashMap<(Category, String), Option<i32>>,
    ops: &mut Vec<Op>,
) -> Result<(), StoreError> {
    for change in changes {
        match change {
            Change::Put {
                category,
                key,
                value,
            } => {
                let id = (*category, key.clone());
                let data = encode_value(value);
                if data.len() > MAX_RECORD {
                    return Err(StoreError::Backend(format!(
                        "record {key:?} is {} bytes compressed, above the {MAX_RECORD}-byte limit",
                        data.len()
                    )));
                }
                let known = current
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| versions.get(&id).copied());
                let path = record_path(*category, key);
                let op = match known {
                    Some(version) => Op::Set {
                        id: id.clone(),
                        path,
                        data,
                        version,
                    },
                    None => Op::Create {
                        id: id.clone(),
                        path,
                        data,
                    },
                };
                current.insert(id, op.outcome().1);
                ops.push(op);
            }
            Change::Delete { category, key } => {
                let id = (*category, key.clone());
                let known = current
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| versions.get(&id).copied());
                if let Some(version) = known {
                    ops.push(Op::Delete {
                        id: id.clone(),
                        path: record_path(*category, key),
                        version,
                    });
                }
                current.insert(id, None);
            }
        }
    }
    Ok(())
}

/// The operations of a group, batch by batch ([`plan_onto`]); when a batch
/// cannot be planned (a record above [`MAX_RECORD`]), the batches before
/// it, and its error with its index.
fn plan_group(
    batches: &[Vec<Change>],
    versions: &HashMap<(Category, String), i32>,
) -> (Vec<Vec<Op>>, Option<(usize, StoreError)>) {
    let mut current = HashMap::new();
    let mut planned = Vec::with_capacity(batches.len());
    for (index, changes) in batches.iter().enumerate() {
        let mut ops = Vec::with_capacity(changes.len());
        if let Err(e) = plan_onto(changes, versions, &mut current, &mut ops) {
            return (planned, Some((index, e)));
        }
        planned.push(ops);
    }
    (planned, None)
}

/// Cuts a group's operations into multi-ops under the request limit, in
/// order, cutting only between batches — each batch stays one atomic
/// multi-op — unless a batch alone passes the limit (then it is cut as
/// [`chunks`] cuts it, as a lone batch always was). With each multi-op:
/// how many batches are wholly written once it is committed.
fn group_chunks(batches: Vec<Vec<Op>>) -> Vec<(Vec<Op>, usize)> {
    let total = batches.len();
    let mut out: Vec<(Vec<Op>, usize)> = Vec::new();
    let mut current: Vec<Op> = Vec::new();
    let mut size = 0;
    for (index, ops) in batches.into_iter().enumerate() {
        let batch_size: usize = ops.iter().map(Op::size).sum();
        if !current.is_empty() && size + batch_size > MAX_MULTI_BYTES {
            out.push((std::mem::take(&mut current), index));
            size = 0;
        }
        if batch_size > MAX_MULTI_BYTES {
            let parts = chunks(ops);
            let last = parts.len();
            out.extend(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, part)| (part, if i + 1 == last { index + 1 } else { index })),
            );
            continue;
        }
        size += batch_size;
        current.extend(ops);
    }
    if !current.is_empty() {
        out.push((current, total));
    }
    out
}

/// Cuts `ops` into multi-ops under the request limit, in order.
fn chunks(ops: Vec<Op>) -> Vec<Vec<Op>> {
    let mut out: Vec<Vec<Op>> = Vec::new();
    let mut size = 0;
    for op in ops {
        if out.is_empty() || size + op.size() > MAX_MULTI_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += op.size();
        if let Some(last) = out.last_mut() {
            last.push(op);
        }
    }
    out
}

/// Reads every record and its version: names listed per category, then
/// read in multi-reads of [`READ_BATCH`] znodes, several in flight.
async fn load_all(
    client: &zk::Client,
) -> Result<(Snapshot, HashMap<(Category, String), i32>), StoreError> {
    let mut snapshot = Snapshot::default();
    let mut versions = HashMap::new();
    for category in Category::ALL {
        let names = match client.list_children(&dir(category)).await {
            Ok(names) => names,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(e) => return Err(backend("listing records", e)),
        };
        let batches: Vec<Vec<String>> = names.chunks(READ_BATCH).map(<[String]>::to_vec).collect();
        let mut reads = futures::stream::iter(batches.into_iter().map(|names| async move {
            let mut reader = client.new_multi_reader();
            for name in &names {
                reader
                    .add_get_data(&format!("{}/{name}", dir(category)))
                    .map_err(|e| backend("building a read", e))?;
            }
            let results = match reader.commit().await {
                Ok(results) => results,
                Err(e) => {
                    debug!(error = %e, "a batched read failed; reading one by one");
                    let mut results = Vec::with_capacity(names.len());
                    for name in &names {
                        results.push(
                            match client.get_data(&format!("{}/{name}", dir(category))).await {
                                Ok((data, stat)) => zk::MultiReadResult::Data { data, stat },
                                Err(err) => zk::MultiReadResult::Error { err },
                            },
                        );
                    }
                    results
                }
            };
            Ok::<_, StoreError>((names, results))
        }))
        .buffer_unordered(READS_IN_FLIGHT);
        let mut records = BTreeMap::new();
        while let Some(batch) = reads.next().await {
            let (names, results) = batch?;
            for (name, result) in names.into_iter().zip(results) {
                let key = decode_key(&name);
                match result {
                    zk::MultiReadResult::Data { data, stat } => {
                        versions.insert((category, key.clone()), stat.version);
                        let value = decode_value(&key, data)?;
                        records.insert(key, value);
                    }
                    // Deleted between the listing and the read.
                    zk::MultiReadResult::Error {
                        err: zk::Error::NoNode,
                    } => {}
                    zk::MultiReadResult::Error { err } => {
                        return Err(backend("reading a record", err));
                    }
                    _ => return Err(backend("reading a record", "no data in the answer")),
                }
            }
        }
        debug!(
            category = category.name(),
            records = records.len(),
            "loaded"
        );
        snapshot.records.insert(category, records);
    }
    Ok((snapshot, versions))
}

impl ZkStore {
    /// Commits one multi-op and remembers the versions it leaves.
    fn commit_chunk(&self, chunk: &[Op]) -> Result<(), StoreError> {
        let outcomes = self.runtime.block_on(self.commit(chunk))?;
        let mut versions = self.versions();
        for (id, version) in outcomes {
            match version {
                Some(v) => versions.insert(id, v),
                None => versions.remove(&id),
            };
        }
        Ok(())
    }
}

impl Store for ZkStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        if let Some(snapshot) = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Ok(snapshot);
        }
        // A second load reads again (from a blocking thread only).
        let (snapshot, versions) = self.runtime.block_on(load_all(&self.client))?;
        *self.versions() = versions;
        Ok(snapshot)
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let ops = plan(changes, &self.versions())?;
        for chunk in chunks(ops) {
            self.commit_chunk(&chunk)?;
        }
        Ok(())
    }

    /// One multi-op for the whole group when it fits the request limit;
    /// otherwise as few as fit, cut only between batches (see the module
    /// documentation).
    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        let (planned, unplannable) = plan_group(batches, &self.versions());
        let mut committed = 0;
        for (chunk, done) in group_chunks(planned) {
            self.commit_chunk(&chunk)
                .map_err(|error| GroupError { committed, error })?;
            committed = done;
        }
        match unplannable {
            None => Ok(()),
            Some((index, error)) => Err(GroupError {
                committed: index,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_single_znode_names_and_back() {
        for key in [
            "/prod/web",
            "/a@2026-01-01T00:00:00.000Z",
            "50%/x",
            "framework_id",
        ] {
            let name = encode_key(key);
            assert!(!name.contains('/'), "{name}");
            assert_eq!(decode_key(&name), key);
        }
    }

    #[test]
    fn large_values_are_compressed_and_read_back() {
        let small = br#"{"id":"/a"}"#.to_vec();
        assert_eq!(encode_value(&small), small);
        let big = serde_json::to_vec(&vec!["the same words again"; 200]).unwrap();
        let stored = encode_value(&big);
        assert!(
            stored.len() < big.len() / 10,
            "{} of {}",
            stored.len(),
            big.len()
        );
        assert_eq!(decode_value("k", stored).unwrap(), big);
        assert_eq!(decode_value("k", small.clone()).unwrap(), small);
    }

    fn put(key: &str) -> Change {
        Change::Put {
            category: Category::App,
            key: key.into(),
            value: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_batch_creates_new_records_and_sets_known_ones_at_their_version() {
        let versions = HashMap::from([((Category::App, "/known".to_string()), 4)]);
        let ops = plan(
            &[
                put("/new"),
                put("/known"),
                put("/new"),
                Change::delete(Category::App, "/known"),
                Change::delete(Category::App, "/never"),
            ],
            &versions,
        )
        .unwrap();
        let shown: Vec<String> = ops
            .iter()
            .map(|op| match op {
                Op::Create { path, .. } => format!("create {path}"),
                Op::Set { path, version, .. } => format!("set {path}@{version}"),
                Op::Delete { path, version, .. } => format!("delete {path}@{version}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "create /state/apps/%2Fnew",
                "set /state/apps/%2Fknown@4",
                "set /state/apps/%2Fnew@0",
                "delete /state/apps/%2Fknown@5",
            ]
        );
    }

    #[test]
    fn an_oversized_record_is_refused_by_name() {
        // Incompressible: xorshift noise.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let noise: Vec<u8> = (0..MAX_RECORD * 2)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let planned = plan(
            &[Change::Put {
                category: Category::App,
                key: "/huge".into(),
                value: noise,
            }],
            &HashMap::new(),
        );
        let Err(err) = planned else {
            panic!("a record of {} bytes was accepted", MAX_RECORD * 2);
        };
        assert!(err.to_string().contains("\"/huge\""), "{err}");
    }

    #[test]
    fn big_batches_are_cut_in_order_under_the_request_limit() {
        let ops: Vec<Op> = (0..100)
            .map(|i| Op::Create {
                id: (Category::App, i.to_string()),
                path: format!("/state/apps/{i}"),
                data: vec![b'x'; 20_000],
            })
            .collect();
        let cut = chunks(ops);
        assert!(cut.len() >= 3, "{}", cut.len());
        assert!(
            cut.iter()
                .all(|c| c.iter().map(Op::size).sum::<usize>() <= MAX_MULTI_BYTES)
        );
        let order: Vec<&str> = cut.iter().flatten().map(Op::path).collect();
        assert_eq!(order.first(), Some(&"/state/apps/0"));
        assert_eq!(order.last(), Some(&"/state/apps/99"));
        assert_eq!(order.len(), 100);
    }

    fn creates(batch: usize, n: usize, bytes: usize) -> Vec<Op> {
        (0..n)
            .map(|i| Op::Create {
                id: (Category::App, format!("{batch}-{i}")),
                path: format!("/state/apps/{batch}-{i}"),
                data: vec![b'x'; bytes],
            })
            .collect()
    }

    #[test]
    fn a_group_commit_is_cut_only_between_its_writes() {
        // 30 writes of 3 × 20 kB: about 13 fit one multi-op.
        let batches: Vec<Vec<Op>> = (0..30).map(|b| creates(b, 3, 20_000)).collect();
        let cut = group_chunks(batches);
        assert!(cut.len() >= 3, "{}", cut.len());
        let mut done_before = 0;
        for (chunk, done) in &cut {
            assert!(chunk.iter().map(Op::size).sum::<usize>() <= MAX_MULTI_BYTES);
            // Whole writes only: a chunk ends at a write's last op.
            assert_eq!(chunk.len(), 3 * (done - done_before), "{done}");
            done_before = *done;
        }
        assert_eq!(cut.last().map(|(_, done)| *done), Some(30));
        let order: Vec<&str> = cut.iter().flat_map(|(c, _)| c).map(Op::path).collect();
        assert_eq!(order.first(), Some(&"/state/apps/0-0"));
        assert_eq!(order.last(), Some(&"/state/apps/29-2"));
    }

    #[test]
    fn a_small_group_commit_is_one_multi_op_and_a_lone_huge_write_is_cut_alone() {
        let small: Vec<Vec<Op>> = (0..16).map(|b| creates(b, 2, 300)).collect();
        let cut = group_chunks(small);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].1, 16);
        // A write that alone passes the limit is cut as before; the
        // writes around it stay whole.
        let batches = vec![
            creates(0, 1, 100),
            creates(1, 60, 20_000),
            creates(2, 1, 100),
        ];
        let cut = group_chunks(batches);
        let done: Vec<usize> = cut.iter().map(|(_, done)| *done).collect();
        assert_eq!(done.first(), Some(&1), "{done:?}");
        assert_eq!(done.last(), Some(&3), "{done:?}");
        assert!(done[1..done.len() - 1].iter().all(|d| *d <= 2), "{done:?}");
        assert!(cut.iter().all(|(c, _)| !c.is_empty()));
    }

    #[test]
    fn a_group_writes_a_key_at_the_version_its_earlier_writes_leave() {
        let versions = HashMap::from([((Category::App, "/known".to_string()), 4)]);
        let (planned, failed) = plan_group(
            &[
                vec![put("/known"), put("/new")],
                vec![put("/new"), Change::delete(Category::App, "/known")],
            ],
            &versions,
        );
        assert!(failed.is_none());
        let shown: Vec<Vec<String>> = planned
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|op| match op {
                        Op::Create { path, .. } => format!("create {path}"),
                        Op::Set { path, version, .. } => format!("set {path}@{version}"),
                        Op::Delete { path, version, .. } => format!("delete {path}@{version}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            shown,
            [
                vec!["set /state/apps/%2Fknown@4", "create /state/apps/%2Fnew"],
                vec!["set /state/apps/%2Fnew@0", "delete /state/apps/%2Fknown@5"],
            ]
        );
    }
}
