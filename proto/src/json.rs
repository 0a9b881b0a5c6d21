//! Mesos-flavoured JSON, which is not proto3's canonical JSON mapping.
//!
//! A real master expects and emits: the original snake_case field names
//! (camelCase names are ignored by it), enum values as their names, `bytes`
//! as base64, 64-bit integers as JSON numbers, and ignores unknown fields.
//! We get exactly that from protobuf reflection over the descriptor set the
//! build script compiled, so the JSON and binary codecs can never disagree
//! about a field.

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

/// Why a JSON document could not become a message, or the reverse.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The message type is not in the compiled descriptor set (a bug).
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The bytes are not JSON, or do not fit the message's schema.
    #[error("invalid Mesos JSON for {type_name}: {source}")]
    Invalid {
        /// Full protobuf name of the message being decoded.
        type_name: String,
        /// What the JSON parser or schema check said.
        #[source]
        source: serde_json::Error,
    },
    /// Protobuf re-encoding between the reflective and generated forms failed.
    #[error("protobuf transcoding of {type_name} failed: {source}")]
    Transcode {
        /// Full protobuf name of the message.
        type_name: String,
        /// The decoder's complaint.
        #[source]
        source: prost::DecodeError,
    },
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(
            &include_bytes!(concat!(env!("OUT_DIR"), "/mesos_descriptor.bin"))[..],
        )
        .expect("the build script's descriptor set decodes")
    })
}

fn descriptor<M: Name>() -> Result<MessageDescriptor, JsonError> {
    let name = M::full_name();
    pool()
        .get_message_by_name(&name)
        .ok_or(JsonError::UnknownType(name))
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .use_enum_numbers(false)
        .skip_default_fields(true)
}

/// Encodes `msg` as Mesos JSON.
pub fn to_vec<M: Message + Name>(msg: &M) -> Result<Vec<u8>, JsonError> {
    let desc = descriptor::<M>()?;
    let dynamic =
        DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()).map_err(|source| {
            JsonError::Transcode {
                type_name: M::full_name(),
                source,
            }
        })?;
    let mut out = Vec::with_capacity(msg.encoded_len() * 2 + 16);
    let mut ser = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut ser, &serialize_options())
        .map_err(|source| JsonError::Invalid {
            type_name: M::full_name(),
            source,
        })?;
    Ok(out)
}

/// Encodes `msg` as a Mesos JSON value (handy for tests and `/state`).
pub fn to_value<M: Message + Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    let bytes = to_vec(msg)?;
    serde_json::from_slice(&bytes).map_err(|source| JsonError::Invalid {
        type_name: M::full_name(),
        source,
    })
}

/// Decodes Mesos JSON into `M`. Unknown fields are ignored, as a master does;
/// both snake_case and lowerCamelCase names are understood.
pub fn from_slice<M: Message + Name + Default>(bytes: &[u8]) -> Result<M, JsonError> {
    let desc = descriptor::<M>()?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(desc, &mut de, &options)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|source| JsonError::Invalid {
            type_name: M::full_name(),
            source,
        })?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|source| JsonError::Transcode {
        type_name: M::full_name(),
        source,
    })
}
