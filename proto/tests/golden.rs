//! Golden bytes: what we encode must equal bytes written out by hand from the
//! upstream field numbers, so a real master reads what we mean.
//!
//! How the expected bytes were derived (protobuf wire format): a field key is
//! `(field_number << 3) | wire_type`, wire type 0 = varint, 1 = 64-bit,
//! 2 = length-delimited. Doubles are IEEE-754 little endian
//! (`struct.pack('<d', 604800.0)` = `00 00 00 00 00 75 22 41`,
//! `struct.pack('<d', 1.0)` = `00 00 00 00 00 00 f0 3f`). Field numbers come
//! from shared/reference/mesos-v1-api.md (scheduler.proto `Call`: type = 2,
//! subscribe = 3; `Call.Subscribe.framework_info` = 1; `FrameworkInfo`:
//! user = 1, name = 2, failover_timeout = 4, checkpoint = 5; `Event`:
//! type = 1, offers = 3; `Event.Offers.offers` = 1; `Offer`: id = 1,
//! framework_id = 2, agent_id = 3, hostname = 4, resources = 5; `Resource`:
//! name = 1, type = 2, scalar = 3; `Value.Scalar.value` = 1; all IDs:
//! value = 1; enums `Call.Type.SUBSCRIBE` = 1, `Event.Type.OFFERS` = 2,
//! `Value.Type.SCALAR` = 0).

use mesos_proto::scheduler::{Call, Event, call, event};
use mesos_proto::util::{agent_id, framework_id, offer_id, scalar_resource};
use mesos_proto::{Encoding, v1};
use prost::Message;

fn subscribe_call() -> Call {
    Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: "baton".into(),
                failover_timeout: Some(604_800.0),
                checkpoint: Some(true),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn offers_event() -> Event {
    Event {
        r#type: Some(event::Type::Offers as i32),
        offers: Some(event::Offers {
            offers: vec![v1::Offer {
                id: offer_id("o1"),
                framework_id: framework_id("f1"),
                agent_id: agent_id("a1"),
                hostname: "h".into(),
                resources: vec![scalar_resource("cpus", 1.0)],
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

#[test]
fn subscribe_call_matches_hand_written_bytes() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x10, 0x01,                         // Call.type (2, varint) = SUBSCRIBE (1)
        0x1a, 0x1a,                         // Call.subscribe (3, len) 26 bytes
          0x0a, 0x18,                       //   Subscribe.framework_info (1, len) 24 bytes
            0x0a, 0x04, b'r', b'o', b'o', b't',      // user (1) "root"
            0x12, 0x05, b'b', b'a', b't', b'o', b'n', // name (2) "baton"
            0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x75, 0x22, 0x41, // failover_timeout (4, fixed64) 604800.0
            0x28, 0x01,                     //     checkpoint (5, varint) true
    ];
    assert_eq!(subscribe_call().encode_to_vec(), expected);
    assert_eq!(Call::decode(expected).unwrap(), subscribe_call());
}

#[test]
fn offers_event_matches_hand_written_bytes() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x08, 0x02,                         // Event.type (1, varint) = OFFERS (2)
        0x1a, 0x2c,                         // Event.offers (3, len) 44 bytes
          0x0a, 0x2a,                       //   Offers.offers (1, len) 42 bytes
            0x0a, 0x04, 0x0a, 0x02, b'o', b'1', //   Offer.id (1) {value (1) "o1"}
            0x12, 0x04, 0x0a, 0x02, b'f', b'1', //   Offer.framework_id (2)
            0x1a, 0x04, 0x0a, 0x02, b'a', b'1', //   Offer.agent_id (3)
            0x22, 0x01, b'h',               //     Offer.hostname (4) "h"
            0x2a, 0x13,                     //     Offer.resources (5, len) 19 bytes
              0x0a, 0x04, b'c', b'p', b'u', b's', // Resource.name (1) "cpus"
              0x10, 0x00,                   //       Resource.type (2) SCALAR (0), required so always written
              0x1a, 0x09,                   //       Resource.scalar (3, len) 9 bytes
                0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, // Scalar.value (1, fixed64) 1.0
    ];
    assert_eq!(offers_event().encode_to_vec(), expected);
    assert_eq!(Event::decode(expected).unwrap(), offers_event());
}

#[test]
fn json_uses_mesos_names_enum_strings_and_numbers() {
    let json = mesos_proto::json::to_value(&subscribe_call()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {
                "user": "root", "name": "baton", "failover_timeout": 604800.0, "checkpoint": true
            }}
        })
    );
    let json = mesos_proto::json::to_value(&offers_event()).unwrap();
    assert_eq!(json["type"], "OFFERS");
    assert_eq!(json["offers"]["offers"][0]["agent_id"]["value"], "a1");
    assert_eq!(
        json["offers"]["offers"][0]["resources"][0]["type"],
        "SCALAR"
    );
}

#[test]
fn json_decodes_what_a_master_sends() {
    // Shapes from shared/reference/mesos-v1-api.md §2.3, plus an unknown
    // field, a null, and an int64 given as a string.
    let update = br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t1"},"state":"TASK_RUNNING",
        "source":"SOURCE_EXECUTOR","agent_id":{"value":"a-S0"},"executor_id":{"value":"e1"},
        "timestamp":1.7e9,"uuid":"AAECAwQFBgcICQoLDA0ODw==","healthy":true,
        "reason":"REASON_TASK_HEALTH_CHECK_STATUS_UPDATED","labels":null,"some_future_field":{"x":1},
        "unreachable_time":{"nanoseconds":"12"}}}}"#;
    let event: Event = Encoding::Json.decode(update).unwrap();
    let status = event.update.unwrap().status;
    assert_eq!(status.state(), v1::TaskState::TaskRunning);
    assert_eq!(
        status.uuid.as_deref(),
        Some(&(0u8..16).collect::<Vec<u8>>()[..])
    );
    assert_eq!(
        status.reason(),
        v1::task_status::Reason::TaskHealthCheckStatusUpdated
    );
    assert_eq!(status.unreachable_time.unwrap().nanoseconds, 12);
    assert_eq!(status.healthy, Some(true));

    let error: Event = Encoding::Json
        .decode(br#"{"type":"ERROR","error":{"message":"Framework failed over"}}"#)
        .unwrap();
    assert_eq!(error.error.unwrap().message, "Framework failed over");
}

#[test]
fn json_and_protobuf_round_trip_the_same_message() {
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let bytes = encoding.encode(&offers_event()).unwrap();
        let back: Event = encoding.decode(&bytes).unwrap();
        assert_eq!(back, offers_event(), "{encoding}");
    }
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(Encoding::Json.decode::<Event>(b"{not json").is_err());
    // A newer master's event type we do not know decodes as "unset" rather
    // than failing the whole stream; the client then ignores the event.
    let future: Event = Encoding::Json
        .decode(br#"{"type":"NO_SUCH_TYPE"}"#)
        .unwrap();
    assert_eq!(future.r#type, None);
    assert!(
        Encoding::Json
            .decode::<Event>(br#"{"type":"OFFERS"} trailing"#)
            .is_err()
    );
    assert!(
        Encoding::Protobuf
            .decode::<Event>(&[0xff, 0xff, 0xff])
            .is_err()
    );
}

#[test]
fn content_type_negotiation_follows_the_master() {
    assert_eq!(
        Encoding::from_content_type("application/json"),
        Some(Encoding::Json)
    );
    assert_eq!(
        Encoding::from_content_type("application/json; charset=utf-8"),
        None
    );
    assert_eq!(Encoding::negotiate(None), Some(Encoding::Json));
    assert_eq!(
        Encoding::negotiate(Some("application/x-protobuf")),
        Some(Encoding::Protobuf)
    );
    assert_eq!(Encoding::negotiate(Some("*/*")), Some(Encoding::Json));
    assert_eq!(Encoding::negotiate(Some("text/html")), None);
}

#[test]
fn event_stream_decodes_records_split_across_chunks() {
    use futures::StreamExt;
    let mut wire = bytes::BytesMut::new();
    for _ in 0..3 {
        mesos_proto::recordio::encode(
            &Encoding::Protobuf.encode(&offers_event()).unwrap(),
            &mut wire,
        );
    }
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = wire
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let events: Vec<_> = futures::executor::block_on(
        mesos_proto::recordio::decode_stream::<Event, _, _>(
            futures::stream::iter(chunks),
            Encoding::Protobuf,
            1 << 20,
        )
        .collect::<Vec<_>>(),
    );
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.as_ref().is_ok_and(|e| *e == offers_event()))
    );

    let garbage: Vec<Result<bytes::Bytes, std::io::Error>> =
        vec![Ok(bytes::Bytes::from_static(b"HTTP/1.1 200 OK\r\n"))];
    let events: Vec<_> = futures::executor::block_on(
        mesos_proto::recordio::decode_stream::<Event, _, _>(
            futures::stream::iter(garbage),
            Encoding::Protobuf,
            1 << 20,
        )
        .collect::<Vec<_>>(),
    );
    assert_eq!(events.len(), 1);
    assert!(events[0].is_err());
}

/// `HealthCheck` with every field set (which Mesos would not accept as a
/// check, but every number shows): delay_seconds = 2, interval_seconds = 3,
/// timeout_seconds = 4, consecutive_failures = 5, grace_period_seconds = 6,
/// command = 7, type = 8 (HTTP = 2), tcp = 9, http = 1 with
/// `HTTPCheckInfo` port = 1, path = 2, scheme = 3, statuses = 4 (not
/// packed: proto2), protocol = 5 (IPv6 = 2); `TCPCheckInfo.port` = 1;
/// `CommandInfo.value` = 3. Doubles: 0.5 = `.. e0 3f`, 2.0 = `.. 00 40`,
/// 4.0 = `.. 10 40`.
fn health_check() -> v1::HealthCheck {
    use v1::health_check::{HttpCheckInfo, TcpCheckInfo, Type};
    v1::HealthCheck {
        delay_seconds: Some(0.5),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(2.0),
        consecutive_failures: Some(2),
        grace_period_seconds: Some(4.0),
        r#type: Some(Type::Http as i32),
        command: Some(v1::CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        http: Some(HttpCheckInfo {
            protocol: Some(v1::network_info::Protocol::IPv6 as i32),
            scheme: Some("http".into()),
            port: 8080,
            path: Some("/h".into()),
            statuses: vec![200],
        }),
        tcp: Some(TcpCheckInfo {
            protocol: None,
            port: 9,
        }),
    }
}

#[test]
fn health_check_matches_hand_written_bytes() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x0a, 0x12,                         // http (1, len) 18 bytes
          0x08, 0x90, 0x3f,                 //   port (1, varint) 8080
          0x12, 0x02, b'/', b'h',           //   path (2) "/h"
          0x1a, 0x04, b'h', b't', b't', b'p', // scheme (3) "http"
          0x20, 0xc8, 0x01,                 //   statuses (4) 200
          0x28, 0x02,                       //   protocol (5) IPv6 (2)
        0x11, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, // delay_seconds (2, fixed64) 0.5
        0x19, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // interval_seconds (3) 1.0
        0x21, 0, 0, 0, 0, 0, 0, 0x00, 0x40, // timeout_seconds (4) 2.0
        0x28, 0x02,                         // consecutive_failures (5, varint) 2
        0x31, 0, 0, 0, 0, 0, 0, 0x10, 0x40, // grace_period_seconds (6) 4.0
        0x3a, 0x06,                         // command (7, len) 6 bytes
          0x1a, 0x04, b't', b'r', b'u', b'e', // CommandInfo.value (3) "true"
        0x40, 0x02,                         // type (8) HTTP (2)
        0x4a, 0x02,                         // tcp (9, len) 2 bytes
          0x08, 0x09,                       //   port (1) 9
    ];
    assert_eq!(health_check().encode_to_vec(), expected);
    assert_eq!(v1::HealthCheck::decode(expected).unwrap(), health_check());

    // TaskInfo.health_check is field 8.
    let task = v1::TaskInfo {
        name: "t".into(),
        task_id: mesos_proto::util::task_id("t"),
        agent_id: agent_id("a"),
        health_check: Some(v1::HealthCheck {
            r#type: Some(v1::health_check::Type::Tcp as i32),
            ..Default::default()
        }),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x0a, 0x01, b't',                   // name (1)
        0x12, 0x03, 0x0a, 0x01, b't',       // task_id (2)
        0x1a, 0x03, 0x0a, 0x01, b'a',       // agent_id (3)
        0x42, 0x02, 0x40, 0x03,             // health_check (8) {type (8) TCP (3)}
    ];
    assert_eq!(task.encode_to_vec(), expected);
    assert_eq!(v1::TaskInfo::decode(expected).unwrap(), task);
}

#[test]
fn health_check_json_uses_mesos_names() {
    let json = mesos_proto::json::to_value(&health_check()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "delay_seconds": 0.5, "interval_seconds": 1.0, "timeout_seconds": 2.0,
            "consecutive_failures": 2, "grace_period_seconds": 4.0, "type": "HTTP",
            "command": {"value": "true"},
            "http": {"protocol": "IPv6", "scheme": "http", "port": 8080, "path": "/h", "statuses": [200]},
            "tcp": {"port": 9}
        })
    );
    let back: v1::HealthCheck =
        mesos_proto::json::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(back.http, health_check().http);
    assert_eq!(back.r#type, health_check().r#type);
}
