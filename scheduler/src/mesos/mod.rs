//! The Mesos client, layered like mesos-go: codecs and RecordIO live in
//! `mesos-proto`; here are typed errors ([`error`]), call builders with no
//! I/O ([`calls`]), master addresses and redirects ([`masters`]), the HTTP
//! caller ([`http`]) and the resubscribing session loop ([`session`]).

pub mod calls;
pub mod detector;
pub mod error;
pub mod http;
pub mod masters;
pub mod session;

pub use error::MesosError;
pub use masters::{MasterEndpoint, MasterSpecError};
pub use session::{MesosHandle, SessionConfig, SessionEvent};
