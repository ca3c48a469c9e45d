//! Guest stdout and stderr: captured in bounded buffers and handed to the log
//! sink after the call, never inherited from the host process.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::limits::MAX_CAPTURED_OUTPUT_BYTES;

/// A write-only stream that keeps the first [`MAX_CAPTURED_OUTPUT_BYTES`] and
/// quietly drops the rest: a guest that prints too much loses output, it does
/// not fail (Rust's `println!` panics when a write fails).
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture {
    inner: Arc<Mutex<CaptureBuf>>,
}

#[derive(Debug, Default)]
struct CaptureBuf {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&self, data: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_CAPTURED_OUTPUT_BYTES.saturating_sub(buf.bytes.len());
        let (kept, dropped) = data.split_at(room.min(data.len()));
        buf.bytes.extend_from_slice(kept);
        buf.dropped += dropped.len();
    }

    /// The captured text (lossy UTF-8) and how many bytes were dropped.
    pub(crate) fn take(&self) -> (String, usize) {
        let mut buf = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = std::mem::take(&mut buf.bytes);
        let dropped = std::mem::take(&mut buf.dropped);
        (String::from_utf8_lossy(&bytes).into_owned(), dropped)
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: excess output is dropped, never blocks the guest.
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let capture = Capture::default();
        capture.push(&vec![b'a'; MAX_CAPTURED_OUTPUT_BYTES - 1]);
        capture.push(b"bcd");
        let (text, dropped) = capture.take();
        assert_eq!(text.len(), MAX_CAPTURED_OUTPUT_BYTES);
        assert!(text.ends_with('b'));
        assert_eq!(dropped, 2);
    }
}
