//! RecordIO, the framing of Mesos event streams: `<decimal length>\n<bytes>`.
//!
//! HTTP chunks have nothing to do with record boundaries: a length line may
//! be split across reads and one read may carry many records. The decoder
//! buffers what it is fed and hands out every complete record before asking
//! for more. A peer cannot make it allocate more than the configured maximum
//! record size, and no input makes it panic (see the fuzz target in
//! `proto/fuzz`). After the first error it stays failed: a byte stream that
//! lost its framing cannot be resynchronised.

use bytes::{Buf, Bytes, BytesMut};

/// Default bound on one record: an OFFERS event from a big cluster is large,
/// but nothing legitimate comes near this.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 16 * 1024 * 1024;

/// `u64::MAX` has 20 digits; a longer length line is garbage.
const MAX_HEADER_DIGITS: usize = 20;

/// Appends one record to `out`.
pub fn encode(record: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(record);
}

/// One record as a fresh buffer.
pub fn encode_to_bytes(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 12);
    encode(record, &mut out);
    out.freeze()
}

/// The stream is not valid RecordIO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    /// The length line holds something other than decimal digits.
    #[error("invalid RecordIO length line {0:?}")]
    InvalidLength(String),
    /// The length line is longer than any valid `u64`.
    #[error("RecordIO length line longer than {MAX_HEADER_DIGITS} digits")]
    LengthTooLong,
    /// A record announces more bytes than the configured bound.
    #[error("RecordIO record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The announced length.
        size: u64,
        /// The configured bound.
        max: usize,
    },
    /// The stream ended in the middle of a record.
    #[error("RecordIO stream ended inside a record ({0} bytes pending)")]
    Truncated(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the digits of a length line.
    Length,
    /// Reading a record body of this many bytes.
    Body(usize),
}

/// Incremental RecordIO decoder: [`feed`](Decoder::feed) bytes as they
/// arrive, then call [`next_record`](Decoder::next_record) until it returns
/// `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    state: State,
    max_record_size: usize,
    failed: Option<RecordIoError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_RECORD_SIZE)
    }
}

impl Decoder {
    /// A decoder that rejects records longer than `max_record_size` bytes.
    pub fn new(max_record_size: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            state: State::Length,
            max_record_size,
            failed: None,
        }
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next complete record, `Ok(None)` if more bytes are needed.
    /// Zero-length records carry nothing and are skipped.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        loop {
            match self.state {
                State::Length => {
                    let Some(newline) = self.buf.iter().position(|b| *b == b'\n') else {
                        if self.buf.len() > MAX_HEADER_DIGITS {
                            return self.fail(RecordIoError::LengthTooLong);
                        }
                        // Reject garbage before its newline arrives, so a
                        // hostile peer cannot hold us waiting.
                        if !self.buf.iter().all(u8::is_ascii_digit) {
                            let shown = String::from_utf8_lossy(&self.buf).into_owned();
                            return self.fail(RecordIoError::InvalidLength(shown));
                        }
                        return Ok(None);
                    };
                    if newline > MAX_HEADER_DIGITS {
                        return self.fail(RecordIoError::LengthTooLong);
                    }
                    let line = &self.buf[..newline];
                    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
                        let shown = String::from_utf8_lossy(line).into_owned();
                        return self.fail(RecordIoError::InvalidLength(shown));
                    }
                    // At most 20 ASCII digits: parse can only fail by overflow.
                    let size = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok());
                    let Some(size) = size else {
                        return self.fail(RecordIoError::LengthTooLong);
                    };
                    if size > self.max_record_size as u64 {
                        return self.fail(RecordIoError::RecordTooLarge {
                            size,
                            max: self.max_record_size,
                        });
                    }
                    self.buf.advance(newline + 1);
                    self.state = State::Body(size as usize);
                }
                State::Body(size) => {
                    if self.buf.len() < size {
                        self.buf.reserve(size - self.buf.len());
                        return Ok(None);
                    }
                    let record = self.buf.split_to(size).freeze();
                    self.state = State::Length;
                    if size == 0 {
                        continue;
                    }
                    return Ok(Some(record));
                }
            }
        }
    }

    /// Call at end of stream: an error if a record was cut off.
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let pending = match self.state {
            State::Length => self.buf.len(),
            State::Body(_) => self.buf.len() + 1,
        };
        if pending == 0 {
            Ok(())
        } else {
            Err(RecordIoError::Truncated(pending))
        }
    }

    fn fail<T>(&mut self, err: RecordIoError) -> Result<T, RecordIoError> {
        self.buf = BytesMut::new();
        self.failed = Some(err.clone());
        Err(err)
    }
}

/// Feeds `data` to a fresh decoder in the given chunk sizes and collects what
/// comes out; the body of the fuzz target and of the property tests.
pub fn decode_chunked(
    data: &[u8],
    chunk_sizes: &[usize],
    max_record_size: usize,
) -> Result<Vec<Bytes>, RecordIoError> {
    let mut decoder = Decoder::new(max_record_size);
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        decoder.feed(&rest[..n]);
        rest = &rest[n..];
        while let Some(record) = decoder.next_record()? {
            out.push(record);
        }
    }
    decoder.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn heartbeat_example_from_the_mesos_docs() {
        let bytes = encode_to_bytes(br#"{"type":"HEARTBEAT"}"#);
        assert_eq!(
            &bytes[..],
            br#"20
{"type":"HEARTBEAT"}"#
        );
        let records = decode_chunked(&bytes, &[1], 100).unwrap();
        assert_eq!(
            records,
            vec![Bytes::from_static(br#"{"type":"HEARTBEAT"}"#)]
        );
    }

    #[test]
    fn length_split_across_reads_and_many_records_in_one_chunk() {
        let mut stream = BytesMut::new();
        encode(&[7u8; 1234], &mut stream);
        encode(b"ab", &mut stream);
        encode(b"c", &mut stream);
        let mut d = Decoder::default();
        d.feed(&stream[..2]); // "12" of "1234\n"
        assert_eq!(d.next_record(), Ok(None));
        d.feed(&stream[2..]);
        assert_eq!(d.next_record().unwrap().unwrap().len(), 1234);
        assert_eq!(d.next_record().unwrap().unwrap(), Bytes::from_static(b"ab"));
        assert_eq!(d.next_record().unwrap().unwrap(), Bytes::from_static(b"c"));
        assert_eq!(d.next_record(), Ok(None));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn record_past_the_bound_is_refused_before_buffering() {
        let mut d = Decoder::new(1024);
        d.feed(b"99999999999\n");
        assert_eq!(
            d.next_record(),
            Err(RecordIoError::RecordTooLarge {
                size: 99_999_999_999,
                max: 1024
            })
        );
        // Stays failed; later bytes are not buffered.
        d.feed(&[0u8; 4096]);
        assert!(d.next_record().is_err());
        assert_eq!(d.buf.len(), 0);
    }

    #[test]
    fn garbage_fails_without_waiting_for_a_newline() {
        let mut d = Decoder::default();
        d.feed(b"<html>");
        assert!(matches!(
            d.next_record(),
            Err(RecordIoError::InvalidLength(_))
        ));
        let mut d = Decoder::default();
        d.feed(&[b'9'; 25]);
        assert_eq!(d.next_record(), Err(RecordIoError::LengthTooLong));
        let mut d = Decoder::default();
        d.feed(b"99999999999999999999\n"); // 20 digits but > u64::MAX
        assert_eq!(d.next_record(), Err(RecordIoError::LengthTooLong));
    }

    #[test]
    fn zero_length_records_are_skipped_and_truncation_is_reported() {
        assert_eq!(
            decode_chunked(b"0\n1\nx", &[3], 10).unwrap(),
            vec![Bytes::from_static(b"x")]
        );
        assert_eq!(
            decode_chunked(b"5\nab", &[3], 10),
            Err(RecordIoError::Truncated(3))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_chunking_round_trips(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            chunks in proptest::collection::vec(1usize..64, 1..10),
        ) {
            let mut stream = BytesMut::new();
            for r in &records {
                encode(r, &mut stream);
            }
            let decoded = decode_chunked(&stream, &chunks, 1024).unwrap();
            let decoded: Vec<Vec<u8>> = decoded.into_iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), chunks in proptest::collection::vec(1usize..32, 1..5)) {
            let _ = decode_chunked(&data, &chunks, 256);
        }
    }
}

/// Why a stream of events stopped yielding.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    /// Reading the underlying byte stream failed.
    #[error("reading the event stream failed: {0}")]
    Read(#[source] E),
    /// The bytes are not RecordIO.
    #[error(transparent)]
    Framing(#[from] RecordIoError),
    /// A record did not decode as the expected message.
    #[error(transparent)]
    Decode(#[from] crate::CodecError),
}

/// Turns a byte stream (an HTTP response body) into a stream of decoded
/// messages. Every complete record is yielded before more bytes are read;
/// the first error ends the stream. A clean end of input inside a record is
/// reported as [`RecordIoError::Truncated`].
pub fn decode_stream<M, S, E>(
    bytes: S,
    encoding: crate::Encoding,
    max_record_size: usize,
) -> impl futures::Stream<Item = Result<M, StreamError<E>>>
where
    M: prost::Message + prost::Name + Default,
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let state = (bytes, Decoder::new(max_record_size), false);
    futures::stream::unfold(state, move |(mut bytes, mut decoder, done)| async move {
        use futures::StreamExt;
        if done {
            return None;
        }
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => {
                    let item = encoding.decode::<M>(&record).map_err(StreamError::from);
                    let failed = item.is_err();
                    return Some((item, (bytes, decoder, failed)));
                }
                Ok(None) => {}
                Err(e) => return Some((Err(e.into()), (bytes, decoder, true))),
            }
            match bytes.next().await {
                Some(Ok(chunk)) => decoder.feed(&chunk),
                Some(Err(e)) => return Some((Err(StreamError::Read(e)), (bytes, decoder, true))),
                None => {
                    return match decoder.finish() {
                        Ok(()) => None,
                        Err(e) => Some((Err(e.into()), (bytes, decoder, true))),
                    };
                }
            }
        }
    })
}
