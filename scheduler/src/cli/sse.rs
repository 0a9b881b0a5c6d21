//! Server-Sent Events as `/v2/events` sends them, parsed from the bytes
//! as they arrive: `event:` and `data:` fields, a blank line ending each
//! event, `:` comments (Baton's keepalive pings) ignored. Lines end with
//! `\n` or `\r\n` (what Baton and Marathon send).

/// One event: its type and its data (data lines joined by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines.
    pub data: String,
}

/// Collects bytes into events; a chunk may end anywhere, even inside a
/// UTF-8 character.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Takes the next bytes of the stream; returns the events they end.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if self.data.is_empty() {
                return None;
            }
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".into()),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> SseEvent {
        SseEvent {
            event: kind.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_end_at_blank_lines_and_comments_are_skipped() {
        let mut p = SseParser::default();
        let got = p.push(
            b":ping\n\nevent: deployment_success\ndata: {\"id\":\"d1\"}\n\ndata: a\ndata: b\n\n",
        );
        assert_eq!(
            got,
            vec![
                event("deployment_success", "{\"id\":\"d1\"}"),
                event("message", "a\nb")
            ]
        );
    }

    #[test]
    fn chunks_may_split_lines_characters_and_crlf() {
        let text = "event: status_update_event\r\ndata: {\"m\":\"é\"}\r\n\r\n".as_bytes();
        for split in 1..text.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&text[..split]);
            got.extend(p.push(&text[split..]));
            assert_eq!(
                got,
                vec![event("status_update_event", "{\"m\":\"é\"}")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: x\n\n").is_empty());
        assert_eq!(p.push(b"data:y\n\n"), vec![event("message", "y")]);
    }
}
