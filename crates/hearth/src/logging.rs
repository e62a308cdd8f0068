//! Log output: each event is written whole, after words shaped like AI-provider keys are
//! replaced (keys are never logged on purpose, docs/ARCHITECTURE.md; this is the second line of defence).

use std::io::Write as _;

use tracing_subscriber::fmt::MakeWriter;

/// Standard error, redacted.
#[derive(Debug, Clone, Copy)]
pub struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = Event;

    fn make_writer(&'a self) -> Self::Writer {
        Event(Vec::with_capacity(256))
    }
}

/// One event's text, collected and written out redacted when the formatter is done with it.
#[derive(Debug)]
pub struct Event(Vec<u8>);

impl std::io::Write for Event {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(hearth_ai::redact_key_shapes(&text).as_bytes());
    }
}
