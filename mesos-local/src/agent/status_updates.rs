//! One task's reliable status-update stream (the agent's
//! `TaskStatusUpdateManager`): updates are queued in order, only the head
//! is forwarded, it is retried with a doubling backoff until the framework
//! acknowledges its uuid, then the next one goes. Pure data; the agent
//! does the sending.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use mesos_proto::util::{is_terminal, state_of};
use mesos_proto::v1;
use tokio::time::Instant;

/// Mesos's `STATUS_UPDATE_RETRY_INTERVAL_MAX`.
pub const MAX_RETRY: Duration = Duration::from_secs(600);
/// Uuids remembered for de-duplication per task.
const MAX_SEEN: usize = 1024;
/// Unacknowledged updates a task's stream holds before the agent refuses
/// more from its executor (503): hours of health updates.
pub const MAX_PENDING: usize = 10_000;

/// What [`UpdateStream::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A uuid seen before: ignored (still acknowledged to the executor).
    Duplicate,
    /// After a terminal update: ignored.
    AfterTerminal,
    /// Queued; `true` if it is the new head and must be forwarded now.
    Queued(bool),
}

/// What [`UpdateStream::ack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// Not the head's uuid: ignored.
    Ignored,
    /// The head was acknowledged; `next` says whether another update is now
    /// the head, `finished` whether the terminal update was acknowledged.
    Done {
        /// A new head to forward.
        next: bool,
        /// The stream is over.
        finished: bool,
    },
}

/// One task's stream.
#[derive(Debug, Clone, Default)]
pub struct UpdateStream {
    pending: VecDeque<v1::TaskStatus>,
    seen: HashSet<Vec<u8>>,
    seen_order: VecDeque<Vec<u8>>,
    terminal_received: bool,
    /// When the head was last forwarded, and the next retry.
    next_retry: Option<Instant>,
    backoff: Duration,
}

impl UpdateStream {
    /// Queues an update.
    pub fn push(&mut self, status: v1::TaskStatus) -> Pushed {
        let uuid = status.uuid.clone().unwrap_or_default();
        if self.seen.contains(&uuid) {
            return Pushed::Duplicate;
        }
        if self.terminal_received {
            return Pushed::AfterTerminal;
        }
        if self.seen_order.len() >= MAX_SEEN
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(uuid.clone());
        self.seen_order.push_back(uuid);
        self.terminal_received = is_terminal(state_of(&status));
        self.pending.push_back(status);
        Pushed::Queued(self.pending.len() == 1)
    }

    /// The update being delivered.
    pub fn head(&self) -> Option<&v1::TaskStatus> {
        self.pending.front()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many updates are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Records that the head was (re)sent at `now`; the next retry is after
    /// `base` the first time, doubling after each retry up to 10 minutes.
    pub fn mark_sent(&mut self, now: Instant, base: Duration) {
        self.backoff = if self.next_retry.is_none() || self.backoff.is_zero() {
            base
        } else {
            (self.backoff * 2).min(MAX_RETRY)
        };
        self.next_retry = Some(now + self.backoff);
    }

    /// Forget the retry schedule: the head is resent at the next chance
    /// with the base interval (agent restart, framework resubscribed).
    pub fn reset_retry(&mut self) {
        self.next_retry = None;
        self.backoff = Duration::ZERO;
    }

    /// When the head is due for a retry, if it was sent.
    pub fn next_retry(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            None
        } else {
            self.next_retry
        }
    }

    /// The framework acknowledged `uuid`.
    pub fn ack(&mut self, uuid: &[u8]) -> Acked {
        let matches = self
            .pending
            .front()
            .is_some_and(|h| h.uuid.as_deref() == Some(uuid));
        if !matches {
            return Acked::Ignored;
        }
        let Some(head) = self.pending.pop_front() else {
            return Acked::Ignored;
        };
        self.reset_retry();
        Acked::Done {
            next: !self.pending.is_empty(),
            finished: self.pending.is_empty() && is_terminal(state_of(&head)),
        }
    }

    /// The state and uuid of the head, for reregistration reports.
    pub fn head_summary(&self) -> Option<(v1::TaskState, Vec<u8>)> {
        self.head()
            .map(|h| (state_of(h), h.uuid.clone().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util;
    use v1::TaskState;

    fn upd(state: TaskState, id: u8) -> v1::TaskStatus {
        let mut s = util::status(util::task_id("t"), state, v1::task_status::Source::Executor);
        s.uuid = Some(vec![id; 16]);
        s
    }

    #[test]
    fn one_at_a_time_until_acknowledged() {
        let mut s = UpdateStream::default();
        assert_eq!(
            s.push(upd(TaskState::TaskStarting, 1)),
            Pushed::Queued(true)
        );
        assert_eq!(
            s.push(upd(TaskState::TaskRunning, 2)),
            Pushed::Queued(false)
        );
        assert_eq!(s.push(upd(TaskState::TaskRunning, 2)), Pushed::Duplicate);
        assert_eq!(s.head().unwrap().state(), TaskState::TaskStarting);
        assert_eq!(s.ack(&[2; 16]), Acked::Ignored);
        assert_eq!(
            s.ack(&[1; 16]),
            Acked::Done {
                next: true,
                finished: false
            }
        );
        assert_eq!(s.head().unwrap().state(), TaskState::TaskRunning);
        assert_eq!(
            s.push(upd(TaskState::TaskFinished, 3)),
            Pushed::Queued(false)
        );
        assert_eq!(
            s.push(upd(TaskState::TaskRunning, 4)),
            Pushed::AfterTerminal
        );
        assert_eq!(
            s.ack(&[2; 16]),
            Acked::Done {
                next: true,
                finished: false
            }
        );
        assert_eq!(
            s.head_summary(),
            Some((TaskState::TaskFinished, vec![3; 16]))
        );
        assert_eq!(
            s.ack(&[3; 16]),
            Acked::Done {
                next: false,
                finished: true
            }
        );
        assert!(s.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_double_up_to_ten_minutes() {
        let mut s = UpdateStream::default();
        s.push(upd(TaskState::TaskRunning, 1));
        let base = Duration::from_secs(10);
        let t0 = Instant::now();
        assert_eq!(s.next_retry(), None);
        s.mark_sent(t0, base);
        assert_eq!(s.next_retry(), Some(t0 + base));
        let mut expected = base;
        for _ in 0..10 {
            tokio::time::advance(expected).await;
            let now = Instant::now();
            s.mark_sent(now, base);
            expected = (expected * 2).min(MAX_RETRY);
            assert_eq!(s.next_retry(), Some(now + expected));
        }
        assert_eq!(expected, MAX_RETRY);
        s.ack(&[1; 16]);
        assert_eq!(s.next_retry(), None);
    }
}
