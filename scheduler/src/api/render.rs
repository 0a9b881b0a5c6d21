//! The vocabulary of rendering a list from a snapshot, shared by the
//! endpoints that render one (`apps`, `groups`, `tasks`, `queue`,
//! `deployments`) and by [`super::lists`], which keeps or streams what they
//! render: what of the snapshot a body reads ([`Reads`]), whether it read
//! the clock ([`Now`]), how it fails ([`RenderError`]), and sequences
//! written as they are reached ([`Seq`]).

use std::cell::Cell;

use serde::Serialize;

use super::ApiError;
use super::shapes::Embed;
use crate::state::app::Timestamp;

/// The maps of a [`View`](crate::reconcile::View) a body is rendered
/// from; a body stays valid while the snapshot has the same ones.
/// `time`: the body always shows the time (task life times), so it is
/// never kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// `View::apps`.
    pub apps: bool,
    /// `View::versions`.
    pub versions: bool,
    /// `View::instances`.
    pub instances: bool,
    /// `View::deployments`.
    pub deployments: bool,
    /// `View::health`.
    pub health: bool,
    /// `View::readiness`.
    pub readiness: bool,
    /// `View::last_failures`.
    pub last_failures: bool,
    /// `View::delays`.
    pub delays: bool,
    /// `View::offer_stats`.
    pub offer_stats: bool,
    /// The body always shows the time.
    pub time: bool,
}

impl Reads {
    /// Nothing (what a body read before it is rendered).
    pub const NONE: Reads = Reads {
        apps: false,
        versions: false,
        instances: false,
        deployments: false,
        health: false,
        readiness: false,
        last_failures: false,
        delays: false,
        offer_stats: false,
        time: false,
    };

    /// What apps shown with `embed` read besides the apps themselves.
    pub fn of_embed(embed: &Embed) -> Reads {
        Reads {
            apps: true,
            instances: embed.counts || embed.tasks || embed.task_stats,
            deployments: embed.deployments,
            health: embed.tasks,
            readiness: embed.readiness,
            last_failures: embed.last_task_failure,
            time: embed.task_stats,
            ..Reads::default()
        }
    }
}

/// The time a rendering may show, and whether it did: a body that shows
/// it (a delay's seconds left, a task's life time) is not the same a
/// moment later, so it is not kept.
#[derive(Debug)]
pub struct Now {
    at: Timestamp,
    read: Cell<bool>,
}

impl Now {
    /// `at`, not read yet.
    pub fn new(at: Timestamp) -> Now {
        Now {
            at,
            read: Cell::new(false),
        }
    }

    /// The time, noting that the body shows it.
    pub fn read(&self) -> Timestamp {
        self.read.set(true);
        self.at
    }

    /// The time for a callee that reads it only for what `embed` asks
    /// (task stats).
    pub fn for_embed(&self, embed: &Embed) -> Timestamp {
        if embed.task_stats {
            self.read()
        } else {
            self.at
        }
    }

    /// Whether the body shows the time.
    pub fn was_read(&self) -> bool {
        self.read.get()
    }
}

/// Why a body could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The request is refused (an unknown group, say), before any byte.
    #[error(transparent)]
    Refused(#[from] ApiError),
    /// Writing failed: the client went away, or the body was larger than
    /// it may be kept.
    #[error("writing the body: {0}")]
    Write(#[from] std::io::Error),
}

impl From<serde_json::Error> for RenderError {
    fn from(e: serde_json::Error) -> RenderError {
        RenderError::Write(e.into())
    }
}

/// A sequence serialized from an iterator as it is written, so that no
/// list of its elements is built first; serde_json writes exactly what it
/// writes for a `Vec` of them.
pub struct Seq<I>(Cell<Option<I>>);

impl<I> Seq<I> {
    /// The elements `iter` yields.
    pub fn new(iter: I) -> Seq<I> {
        Seq(Cell::new(Some(iter)))
    }
}

impl<I, T> Serialize for Seq<I>
where
    I: Iterator<Item = T>,
    T: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(iter) => serializer.collect_seq(iter),
            None => Err(serde::ser::Error::custom("a Seq is serialized once")),
        }
    }
}
