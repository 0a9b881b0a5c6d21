//! An agent's dynamic reservations and persistent volumes on disk, as a
//! Mesos agent keeps them.
//!
//! The master sends the agent all its reservations and volumes whenever a
//! RESERVE, UNRESERVE, CREATE or DESTROY changes them; the agent
//! checkpoints them (Mesos: `meta/resources/resources_info`; here
//! `<work_dir>/meta/resources/agent-<i>/resources_info`, JSON `Resource`s
//! in the post-refinement format, next to the container checkpoints of
//! [`super::checkpoint`]) and creates or removes the volumes' directories
//! (Mesos: `<work_dir>/volumes/roles/<role>/<persistence id>`; here
//! `<work_dir>/volumes/agent-<i>/roles/<role>/<persistence id>`, since
//! the agents share one work directory). An agent that starts reads them
//! back and reports them to the master, which carves them out of its
//! total again.
//!
//! A container using a volume sees it in its sandbox at the volume's
//! `container_path`, as a symlink to the volume's directory: what Mesos's
//! `filesystem/posix` isolator does without the linux filesystem isolator.

use std::path::{Path, PathBuf};

use mesos_proto::v1;

use crate::resources::{Format, Key, Resources};

/// Why a volume or the checkpoint could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file or directory operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint is not a list of resources.
    #[error("checkpoint {}: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The checkpoint file of agent `index`.
pub fn checkpoint_path(work_dir: &Path, index: usize) -> PathBuf {
    work_dir
        .join("meta")
        .join("resources")
        .join(format!("agent-{index}"))
        .join("resources_info")
}

/// The directory of the volume `key` on agent `index`; `None` when `key`
/// is not a volume.
pub fn volume_path(work_dir: &Path, index: usize, key: &Key) -> Option<PathBuf> {
    let v = key.volume.as_ref()?;
    let mut path = work_dir
        .join("volumes")
        .join(format!("agent-{index}"))
        .join("roles");
    // A hierarchical role is nested directories, as in Mesos.
    for part in key.role().unwrap_or("*").split('/') {
        path.push(part);
    }
    Some(path.join(&v.id))
}

/// Reads agent `index`'s checkpoint; nothing when there is none.
pub fn load(work_dir: &Path, index: usize) -> Result<Resources, VolumeError> {
    let path = checkpoint_path(work_dir, index);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resources::default()),
        Err(e) => return Err(io("cannot read", &path)(e)),
    };
    let corrupt = |why: String| VolumeError::Corrupt {
        path: path.clone(),
        why,
    };
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut protos = Vec::new();
    for v in values {
        let bytes = serde_json::to_vec(&v).map_err(|e| corrupt(e.to_string()))?;
        protos.push(
            mesos_proto::json::from_slice::<v1::Resource>(&bytes)
                .map_err(|e| corrupt(e.to_string()))?,
        );
    }
    Resources::from_protos(&protos).map_err(corrupt)
}

/// Writes agent `index`'s checkpoint (atomically: a reader sees the old
/// or the new list).
pub fn save(work_dir: &Path, index: usize, resources: &Resources) -> Result<(), VolumeError> {
    let path = checkpoint_path(work_dir, index);
    let dir = path.parent().unwrap_or(work_dir);
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let values: Vec<serde_json::Value> = resources
        .to_protos(None, Format::Post)
        .iter()
        .filter_map(|r| mesos_proto::json::to_value(r).ok())
        .collect();
    let text = serde_json::to_vec_pretty(&values).unwrap_or_default();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("cannot rename", &path))
}

/// Makes the volume directories match `new`: creates those it adds,
/// removes (with their data) those `old` had and it has not.
pub fn sync(
    work_dir: &Path,
    index: usize,
    old: &Resources,
    new: &Resources,
) -> Result<(), VolumeError> {
    for (key, _) in new.volumes() {
        if let Some(path) = volume_path(work_dir, index, key) {
            std::fs::create_dir_all(&path).map_err(io("cannot create", &path))?;
        }
    }
    let kept: Vec<Option<PathBuf>> = new
        .volumes()
        .into_iter()
        .map(|(k, _)| volume_path(work_dir, index, k))
        .collect();
    for (key, _) in old.volumes() {
        let path = volume_path(work_dir, index, key);
        if kept.contains(&path) {
            continue;
        }
        if let Some(path) = path {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot remove", &path)(e)),
            }
        }
    }
    Ok(())
}

/// What a container using `resources` links into its sandbox: each
/// volume's directory and where it appears (relative to the sandbox).
pub fn links(work_dir: &Path, index: usize, resources: &Resources) -> Vec<(PathBuf, String)> {
    resources
        .volumes()
        .into_iter()
        .filter_map(|(k, v)| volume_path(work_dir, index, k).map(|p| (p, v.container_path.clone())))
        .collect()
}

/// Links the volumes into `sandbox` (the directories created if missing,
/// an existing link replaced).
pub fn link(sandbox: &Path, links: &[(PathBuf, String)]) -> Result<(), VolumeError> {
    for (target, container_path) in links {
        let at = sandbox.join(container_path.trim_start_matches('/'));
        if !at.starts_with(sandbox) || container_path.split('/').any(|p| p == "..") {
            return Err(VolumeError::Io {
                what: "volume path outside the sandbox",
                path: at,
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        std::fs::create_dir_all(target).map_err(io("cannot create", target))?;
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        if std::fs::symlink_metadata(&at).is_ok() {
            let _ = std::fs::remove_file(&at);
        }
        std::os::unix::fs::symlink(target, &at).map_err(io("cannot link", &at))?;
    }
    Ok(())
}

/// Removes the links of volumes a container no longer uses from `sandbox`
/// (the volumes themselves stay): what Mesos's `filesystem/posix`
/// isolator's `update` does when a container's resources shrink. Only a
/// symlink is removed; anything else at the path is left alone.
pub fn unlink(sandbox: &Path, links: &[(PathBuf, String)]) {
    for (_, container_path) in links {
        let at = sandbox.join(container_path.trim_start_matches('/'));
        if !at.starts_with(sandbox) || container_path.split('/').any(|p| p == "..") {
            continue;
        }
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::scalar_resource;

    #[allow(deprecated)]
    fn volume(id: &str, role: &str, mb: f64) -> v1::Resource {
        let mut r = scalar_resource("disk", mb);
        r.role = Some(role.into());
        r.reservation = Some(v1::resource::ReservationInfo {
            principal: Some("p".into()),
            ..Default::default()
        });
        r.disk = Some(v1::resource::DiskInfo {
            persistence: Some(v1::resource::disk_info::Persistence {
                id: id.into(),
                principal: Some("p".into()),
            }),
            volume: Some(v1::Volume {
                container_path: "data".into(),
                mode: v1::volume::Mode::Rw as i32,
                ..Default::default()
            }),
        });
        r
    }

    #[test]
    fn checkpoint_round_trips_and_volumes_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        assert!(load(work, 2).unwrap().is_empty());
        let one = Resources::from_protos(&[volume("v1", "web", 64.0)]).unwrap();
        sync(work, 2, &Resources::default(), &one).unwrap();
        save(work, 2, &one).unwrap();
        assert_eq!(load(work, 2).unwrap(), one);
        let path = volume_path(work, 2, one.volumes()[0].0).unwrap();
        assert!(path.ends_with("volumes/agent-2/roles/web/v1"), "{path:?}");
        assert!(path.is_dir());
        std::fs::write(path.join("f"), "x").unwrap();

        // Linked into a sandbox at its container path.
        let sandbox = work.join("sandbox");
        std::fs::create_dir_all(&sandbox).unwrap();
        link(&sandbox, &links(work, 2, &one)).unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("data/f")).unwrap(),
            "x"
        );

        // Destroyed: its directory and data go.
        sync(work, 2, &one, &Resources::default()).unwrap();
        assert!(!path.exists());
        std::fs::write(checkpoint_path(work, 2), "{").unwrap();
        assert!(matches!(load(work, 2), Err(VolumeError::Corrupt { .. })));
    }

    #[test]
    fn unlink_removes_only_the_links() {
        let dir = tempfile::tempdir().unwrap();
        let (sandbox, target) = (dir.path().join("s"), dir.path().join("v"));
        link(&sandbox, &[(target.clone(), "data".into())]).unwrap();
        std::fs::create_dir_all(sandbox.join("plain")).unwrap();
        unlink(
            &sandbox,
            &[
                (target.clone(), "data".into()),
                (target.clone(), "plain".into()),
            ],
        );
        assert!(std::fs::symlink_metadata(sandbox.join("data")).is_err());
        assert!(sandbox.join("plain").is_dir(), "not a link: kept");
        assert!(target.is_dir(), "the volume stays");
    }

    #[test]
    fn links_stay_inside_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("v");
        let err = link(dir.path(), &[(target, "../x".into())]).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
