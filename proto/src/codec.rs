//! The two encodings of the Mesos v1 HTTP APIs, chosen by media type.
//!
//! A master compares `Content-Type` with `==`, so the strings here are exact
//! (no `; charset=utf-8`).

use prost::{Message, Name};

use crate::json::{self, JsonError};

/// `Content-Type`/`Accept` value for binary protobuf.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/x-protobuf";
/// `Content-Type`/`Accept` value for Mesos JSON.
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// A wire encoding of Mesos messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// Binary protobuf; smaller and faster, Baton's default.
    #[default]
    Protobuf,
    /// Mesos-flavoured JSON (see [`crate::json`]).
    Json,
}

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Binary protobuf did not decode.
    #[error("invalid protobuf {type_name}: {source}")]
    Protobuf {
        /// Full protobuf name of the message.
        type_name: String,
        /// The decoder's complaint.
        #[source]
        source: prost::DecodeError,
    },
    /// Mesos JSON did not decode or encode.
    #[error(transparent)]
    Json(#[from] JsonError),
}

impl Encoding {
    /// The exact media type for `Content-Type` and `Accept`.
    pub fn media_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF_MEDIA_TYPE,
            Encoding::Json => JSON_MEDIA_TYPE,
        }
    }

    /// The encoding a `Content-Type` names, compared exactly as a master does.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        match value {
            PROTOBUF_MEDIA_TYPE => Some(Encoding::Protobuf),
            JSON_MEDIA_TYPE => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The encoding to answer with for an `Accept` header, as a master picks
    /// it: absent, empty or `*/*` means JSON; otherwise the first of JSON and
    /// protobuf that the header lists. `None` means 406.
    pub fn negotiate(accept: Option<&str>) -> Option<Encoding> {
        let accept = accept.map(str::trim).unwrap_or("");
        if accept.is_empty() {
            return Some(Encoding::Json);
        }
        let listed: Vec<&str> = accept
            .split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim())
            .collect();
        let allows = |media: &str| {
            listed.iter().any(|l| {
                *l == media
                    || *l == "*/*"
                    || (*l == "application/*" && media.starts_with("application/"))
            })
        };
        if allows(JSON_MEDIA_TYPE) {
            Some(Encoding::Json)
        } else if allows(PROTOBUF_MEDIA_TYPE) {
            Some(Encoding::Protobuf)
        } else {
            None
        }
    }

    /// Encodes a message.
    pub fn encode<M: Message + Name>(self, msg: &M) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoding::Protobuf => Ok(msg.encode_to_vec()),
            Encoding::Json => Ok(json::to_vec(msg)?),
        }
    }

    /// Decodes a message.
    pub fn decode<M: Message + Name + Default>(self, bytes: &[u8]) -> Result<M, CodecError> {
        match self {
            Encoding::Protobuf => M::decode(bytes).map_err(|source| CodecError::Protobuf {
                type_name: M::full_name(),
                source,
            }),
            Encoding::Json => Ok(json::from_slice(bytes)?),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
        })
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "protobuf" | "proto" | PROTOBUF_MEDIA_TYPE => Ok(Encoding::Protobuf),
            "json" | JSON_MEDIA_TYPE => Ok(Encoding::Json),
            other => Err(format!(
                "unknown encoding {other:?}; expected protobuf or json"
            )),
        }
    }
}
