//! Feeds arbitrary bytes, in arbitrary chunk sizes, to the RecordIO decoder:
//! it must never panic and never hold more than its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunking; the rest is the stream.
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk % 64) + 1;
    let _ = mesos_proto::recordio::decode_chunked(stream, &[chunk, 1, chunk * 3], 4096);
});
