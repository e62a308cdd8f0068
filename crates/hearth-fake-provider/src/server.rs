//! The listener: accepts connections and serves each with HTTP/1.1. Served by hand rather
//! than with `axum::serve` so that the `reset` scenario can drop a connection, with a TCP
//! reset, without writing a status line.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Marks a response that must not be sent: its connection is reset instead. Also the error
/// the connection's service returns to make hyper drop the connection unanswered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection reset on purpose (scenario `reset`)")]
pub(crate) struct ResetConnection;

/// A response standing for "reset this connection".
pub(crate) fn reset_connection() -> Response {
    let mut response = ().into_response();
    response.extensions_mut().insert(ResetConnection);
    response
}

/// Accepts connections on `listener` and serves `app` on each until this future is dropped;
/// dropping it also drops every open connection.
pub(crate) async fn run(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait for connections to finish
                    // rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection until the client closes it, it fails, or a handler asks for a reset.
async fn serve_connection(stream: TcpStream, app: Router) {
    // Streams are many small writes; Nagle's algorithm would hold them back.
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream { stream, reset: Arc::clone(&reset) });
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let app = app.clone();
        let reset = Arc::clone(&reset);
        async move {
            let response = match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<ResetConnection>().is_some() {
                reset.store(true, Ordering::Relaxed);
                // hyper closes a connection whose service fails without writing anything.
                return Err(ResetConnection);
            }
            Ok(response)
        }
    });
    // No timer, so no header-read timeout: idle keep-alive connections stay open even in
    // tests that pause tokio's clock. Errors here are the client's doing (it went away) or
    // the scenarios' own; neither is worth a log line on a benchmark target.
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let _ = connection.await;
}

/// A TCP stream that, when a reset was asked for, closes with RST instead of FIN.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
