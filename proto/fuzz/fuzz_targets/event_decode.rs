//! Arbitrary bytes as a scheduler Event in both encodings: errors are fine,
//! panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesos_proto::Encoding;
use mesos_proto::scheduler::Event;

fuzz_target!(|data: &[u8]| {
    let _ = Encoding::Protobuf.decode::<Event>(data);
    let _ = Encoding::Json.decode::<Event>(data);
});
