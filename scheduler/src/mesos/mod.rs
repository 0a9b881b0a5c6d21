//! The Mesos client, layered like mesos-go: codecs and RecordIO live in
//! `mesos-proto`; here are typed errors ([`error`]), call builders with no
//! I/O ([`calls`]), master addresses and redirects ([`masters`]), what we
//! prove to masters and what we trust ([`auth`]), the HTTP(S) caller
//! ([`http`]) and the resubscribing session loop ([`session`]).

pub mod auth;
pub mod calls;
pub mod detector;
pub mod error;
pub mod http;
pub mod masters;
pub mod session;

pub use auth::{AuthError, MesosCredentials};
pub use error::MesosError;
pub use http::CallerSecurity;
pub use masters::{MasterEndpoint, MasterSpecError};
pub use session::{MesosHandle, SessionConfig, SessionEvent};
