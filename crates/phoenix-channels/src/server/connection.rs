//! TCP connections whose socket two parties write: the socket's own task (replies, pushes,
//! everything the loop sends) and whoever fans a [`Broadcast`] out, who writes the encoded
//! frame straight to the socket without waking its task.
//!
//! Why: through the task, a broadcast to 10 000 sockets costs each socket a queue push, a task
//! wake-up, a turn of the socket loop and a write; written directly it costs one write system
//! call. Neither axum nor tokio-tungstenite lets two parties write one WebSocket, so this
//! module does the one thing they do not: it sits under the WebSocket as its byte stream and
//! lets a broadcast in between the task's writes, never inside one of its frames.
//!
//! The rules that keep the bytes and the protocol in order:
//! - Every write, the task's and a broadcast's, goes through the [`Outbox`]'s lock, and a
//!   write is taken whole or not at all: what the kernel does not take at once waits in the
//!   outbox (`unsent`), and nothing else is written until it has gone. Frames never interleave.
//! - A broadcast is written directly only when nothing must go before it: no command waiting in
//!   the socket's queue and no turn of its loop under way (`ahead` is zero), nothing unsent,
//!   and its topic among the channels whose join reply is already out. Otherwise it goes
//!   through the queue as before, so it keeps its place behind them.
//!
//! [`Broadcast`]: super::Broadcast

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context, Poll, ready};

use axum::extract::{ConnectInfo, Request};
use axum::serve::IncomingStream;
use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::send_batch::{self, Outgoing, Sent};
use crate::codec::Vsn;

/// A TCP listener for `axum::serve` whose connections carry an [`Outbox`]; serve it with
/// [`ServeConnections`] so that the socket handler finds the outbox among the request's
/// extensions.
#[derive(Debug)]
pub struct Listener(tokio::net::TcpListener);

impl From<tokio::net::TcpListener> for Listener {
    fn from(listener: tokio::net::TcpListener) -> Self {
        Self(listener)
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        // axum's own accept retries (and logs) failed accepts.
        let (stream, remote) = axum::serve::Listener::accept(&mut self.0).await;
        (Connection::new(stream), remote)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// One accepted TCP connection: the byte stream under HTTP and, after an upgrade, under the
/// WebSocket. Reads are the task's alone; writes go through the [`Outbox`].
#[derive(Debug)]
pub struct Connection {
    stream: Arc<TcpStream>,
    outbox: Outbox,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let stream = Arc::new(stream);
        Self { outbox: Outbox::new(stream.clone()), stream }
    }

    /// The TCP stream, for its options (`TCP_NODELAY`).
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    /// The outbox that broadcasts write through.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Outboxes outlive the connection in the handles others keep; the socket is closed now,
        // not when the last of those goes.
        self.outbox.state().stream = None;
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(read) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for Connection {
    /// Takes all of `buf` or none of it (see the module's rules).
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            {
                let mut state = self.outbox.state();
                if write_unsent(&self.stream, &mut state.unsent)? {
                    match self.stream.try_write(buf) {
                        Ok(written) => {
                            state.unsent.extend_from_slice(&buf[written..]);
                            return Poll::Ready(Ok(buf.len()));
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                }
            }
            ready!(self.stream.poll_write_ready(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if write_unsent(&self.stream, &mut self.outbox.state().unsent)? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.stream.poll_write_ready(cx))?;
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let mut state = self.outbox.state();
        state.stream = None;
        Poll::Ready(socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write))
    }
}

/// Writes what waits in `unsent` as far as the socket takes it; `Ok(true)` once it is empty.
fn write_unsent(stream: &TcpStream, unsent: &mut BytesMut) -> io::Result<bool> {
    while !unsent.is_empty() {
        match stream.try_write(unsent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => unsent.advance(written),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// What a direct write of a broadcast came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direct {
    /// On the wire (or its tail in the outbox, which the task writes out).
    Written,
    /// The socket has not joined the topic: nothing to send.
    NotJoined,
    /// The connection is gone.
    Closed,
    /// Something must go first, or the socket is full: through the queue instead.
    Queue,
}

/// Everything written to one connection passes here; shared by the connection, its socket's
/// task and every handle to that socket.
#[derive(Debug, Clone)]
pub struct Outbox(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Commands waiting in the socket's queue, plus one while a turn of its loop is under way:
    /// a broadcast is written directly only when this is zero.
    ahead: AtomicUsize,
    /// Wakes the socket's task to write out the tail of a direct write.
    unsent_waiting: Notify,
}

#[derive(Debug)]
struct State {
    /// `None` once the connection has closed.
    stream: Option<Arc<TcpStream>>,
    /// Bytes taken but not yet written: the tail of one write the socket did not take whole.
    unsent: BytesMut,
    /// Set while a Phoenix socket runs on the connection.
    lane: Option<Lane>,
}

/// What a direct write needs to know of the socket.
#[derive(Debug)]
struct Lane {
    vsn: Vsn,
    /// The channels whose join reply has gone out.
    topics: Vec<String>,
}

impl Outbox {
    fn new(stream: Arc<TcpStream>) -> Self {
        Self(Arc::new(Shared {
            state: Mutex::new(State { stream: Some(stream), unsent: BytesMut::new(), lane: None }),
            ahead: AtomicUsize::new(0),
            unsent_waiting: Notify::new(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A Phoenix socket with serializer `vsn` now runs on the connection.
    pub(super) fn open_lane(&self, vsn: Vsn) {
        self.state().lane = Some(Lane { vsn, topics: Vec::new() });
    }

    /// The socket is closing: no more direct writes.
    pub(super) fn close_lane(&self) {
        self.state().lane = None;
    }

    /// A command is about to join the socket's queue.
    pub(super) fn command_queued(&self) {
        self.0.ahead.fetch_add(1, Ordering::SeqCst);
    }

    /// A command counted by [`Outbox::command_queued`] did not make it into the queue.
    pub(super) fn command_refused(&self) {
        self.0.ahead.fetch_sub(1, Ordering::SeqCst);
    }

    /// A turn of the socket's loop begins.
    pub(super) fn begin_turn(&self) {
        self.0.ahead.fetch_add(1, Ordering::SeqCst);
    }

    /// A turn has ended with everything it sent handed to the connection, `taken` commands
    /// taken from the queue, and `topics` the channels now joined.
    pub(super) fn end_turn<'a>(&self, taken: usize, topics: impl Iterator<Item = &'a str> + Clone) {
        let mut state = self.state();
        if let Some(lane) = &mut state.lane
            && !lane.topics.iter().map(String::as_str).eq(topics.clone())
        {
            lane.topics = topics.map(str::to_owned).collect();
        }
        self.0.ahead.fetch_sub(1 + taken, Ordering::SeqCst);
    }

    /// Resolves when a direct write has left a tail for the task to write out.
    pub(super) async fn unsent_waiting(&self) {
        self.0.unsent_waiting.notified().await;
    }

    /// Writes a broadcast on `topic` directly if nothing must go before it; `frame` gives its
    /// WebSocket frame in the socket's serializer.
    pub(super) fn write_broadcast(&self, topic: &str, frame: impl FnOnce(Vsn) -> Option<Bytes>) -> Direct {
        let mut state = self.state();
        match direct_send(&mut state, &self.0.ahead, topic, frame) {
            Ok(send) => {
                let sent = send_batch::send_one(&send);
                self.settle(state, &send, sent)
            }
            Err(outcome) => outcome,
        }
    }

    /// Settles a direct write that `state`'s lock has covered since it was checked.
    fn settle(&self, mut state: MutexGuard<'_, State>, send: &Outgoing, sent: Sent) -> Direct {
        match sent {
            Sent::Wrote(written) if written >= send.bytes.len() => Direct::Written,
            Sent::Wrote(written) => {
                state.unsent.extend_from_slice(&send.bytes[written..]);
                drop(state);
                self.0.unsent_waiting.notify_one();
                Direct::Written
            }
            // Full, or failing: the task finds out and acts on it.
            Sent::Refused => Direct::Queue,
            // Part of a frame may be on the wire: nothing can follow it. The socket's task
            // finds the connection shut and closes.
            Sent::Unknown => {
                state.stream = None;
                let _ = socket2::SockRef::from(&*send.stream).shutdown(std::net::Shutdown::Both);
                Direct::Closed
            }
        }
    }
}

/// Writes a broadcast on `topic` directly to each of `outboxes` (`None`: a socket without
/// one) that takes it, the lot in as few system calls as the kernel allows; `outcomes` gets
/// one entry per outbox, in order. An outbox whose lock is held elsewhere gets `None`: the
/// caller writes it alone afterwards, because waiting for that lock while holding the others'
/// could deadlock with another fan-out holding it and waiting for one of these.
pub(super) fn write_broadcasts<F>(
    outboxes: &[Option<&Outbox>],
    topic: &str,
    frame: F,
    outcomes: &mut Vec<Option<Direct>>,
) where
    F: Fn(Vsn) -> Option<Bytes>,
{
    outcomes.clear();
    let mut checked = Vec::with_capacity(outboxes.len());
    let mut sends = Vec::with_capacity(outboxes.len());
    for (index, outbox) in outboxes.iter().enumerate() {
        let Some(outbox) = outbox else {
            outcomes.push(Some(Direct::Queue));
            continue;
        };
        let mut state = match outbox.0.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                outcomes.push(None);
                continue;
            }
        };
        match direct_send(&mut state, &outbox.0.ahead, topic, &frame) {
            Ok(send) => {
                outcomes.push(None);
                sends.push(send);
                checked.push((index, outbox, state));
            }
            Err(outcome) => outcomes.push(Some(outcome)),
        }
    }
    let sent = send_batch::send_all(&sends);
    for (((index, outbox, state), send), sent) in checked.into_iter().zip(&sends).zip(sent) {
        outcomes[index] = Some(outbox.settle(state, send, sent));
    }
}

/// The send of a broadcast on `topic` if nothing must go before it on the connection whose
/// state is `state` (locked by the caller until the send is settled); otherwise what to do
/// instead.
fn direct_send(
    state: &mut State,
    ahead: &AtomicUsize,
    topic: &str,
    frame: impl FnOnce(Vsn) -> Option<Bytes>,
) -> Result<Outgoing, Direct> {
    let State { stream, unsent, lane } = state;
    let Some(stream) = stream else { return Err(Direct::Closed) };
    if ahead.load(Ordering::SeqCst) != 0 || !unsent.is_empty() {
        return Err(Direct::Queue);
    }
    let Some(lane) = lane else { return Err(Direct::Queue) };
    if !lane.topics.iter().any(|joined| joined == topic) {
        return Err(Direct::NotJoined);
    }
    // Not encodable in this serializer: nothing to send, as through the queue.
    let Some(bytes) = frame(lane.vsn) else { return Err(Direct::Written) };
    Ok(Outgoing { stream: stream.clone(), bytes })
}

/// `axum::serve`'s service maker for a [`Listener`]: each request carries its connection's
/// [`Outbox`] and `ConnectInfo<SocketAddr>` among its extensions.
#[derive(Debug, Clone)]
pub struct ServeConnections<S>(pub S);

impl<L, S> tower::Service<IncomingStream<'_, L>> for ServeConnections<S>
where
    L: axum::serve::Listener<Io = Connection, Addr = SocketAddr>,
    S: Clone,
{
    type Response = WithConnection<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(WithConnection {
            inner: self.0.clone(),
            remote: *incoming.remote_addr(),
            outbox: incoming.io().outbox(),
        }))
    }
}

/// A connection's service: `inner`, with the connection's extensions added to each request.
#[derive(Debug, Clone)]
pub struct WithConnection<S> {
    inner: S,
    remote: SocketAddr,
    outbox: Outbox,
}

impl<S: tower::Service<Request>> tower::Service<Request> for WithConnection<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.remote));
        request.extensions_mut().insert(self.outbox.clone());
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A connection to a reader that reads only when told, with a small send buffer.
    async fn pair() -> (Connection, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let reader = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&stream).set_send_buffer_size(4096).expect("SO_SNDBUF");
        socket2::SockRef::from(&reader).set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let connection = Connection::new(stream);
        let outbox = connection.outbox();
        outbox.open_lane(Vsn::V2);
        outbox.begin_turn();
        outbox.end_turn(0, ["room:1"].into_iter());
        (connection, reader)
    }

    /// Frame `k`: 10 000 bytes, each `k`.
    fn frame(k: u8) -> Bytes {
        Bytes::from(vec![k; 10_000])
    }

    /// While the tail of a write waits in the outbox, a broadcast is not written directly, even
    /// when the socket has room again: it would land before the tail, inside a frame.
    #[tokio::test]
    async fn nothing_is_written_directly_while_a_tail_waits() {
        let (mut connection, mut reader) = pair().await;
        let outbox = connection.outbox();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut received = Vec::new();
        let mut k = 0u8;
        // Broadcast until the socket takes only part of one.
        while outbox.state().unsent.is_empty() {
            match outbox.write_broadcast("room:1", |_| Some(frame(k))) {
                Direct::Written => k += 1,
                Direct::Queue => {
                    let read = reader.read(&mut buffer).await.expect("read");
                    received.extend_from_slice(&buffer[..read]);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(k < 200, "the socket never took part of a frame");
        }
        // The socket empty again, and still the next broadcast waits its turn.
        while let Ok(read) = tokio::time::timeout(Duration::from_millis(50), reader.read(&mut buffer)).await {
            received.extend_from_slice(&buffer[..read.expect("read")]);
        }
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(k))), Direct::Queue);
        // The task writes the tail out; then direct writes go on.
        let flushing = tokio::spawn(async move {
            connection.flush().await.expect("flush");
            connection
        });
        while received.len() < usize::from(k) * 10_000 {
            let read = reader.read(&mut buffer).await.expect("read");
            received.extend_from_slice(&buffer[..read]);
        }
        let connection = flushing.await.expect("flushed");
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(k))), Direct::Written);
        while received.len() < (usize::from(k) + 1) * 10_000 {
            let read = reader.read(&mut buffer).await.expect("read");
            received.extend_from_slice(&buffer[..read]);
        }
        let expected: Vec<u8> = (0..=k).flat_map(|k| frame(k).to_vec()).collect();
        assert!(received == expected, "every frame whole and in order");
        drop(connection);
    }

    /// Topics not joined get nothing; a turn under way or a queued command sends broadcasts
    /// through the queue; a closed connection refuses them.
    #[tokio::test]
    async fn broadcasts_go_directly_only_when_nothing_is_ahead() {
        let (connection, _reader) = pair().await;
        let outbox = connection.outbox();
        assert_eq!(outbox.write_broadcast("room:2", |_| Some(frame(0))), Direct::NotJoined);
        outbox.begin_turn();
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(0))), Direct::Queue);
        outbox.end_turn(0, ["room:1"].into_iter());
        outbox.command_queued();
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(0))), Direct::Queue);
        outbox.begin_turn();
        outbox.end_turn(1, ["room:1", "room:2"].into_iter());
        assert_eq!(outbox.write_broadcast("room:2", |_| Some(frame(0))), Direct::Written);
        outbox.close_lane();
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(0))), Direct::Queue);
        drop(connection);
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(0))), Direct::Closed);
    }

    /// Reads from each reader until it has `lengths[i]` bytes, or nothing more comes for 10 s
    /// (with buffers this small, TCP may wait a few hundred milliseconds to reopen its window).
    async fn read_all(readers: &mut [TcpStream], lengths: &[usize]) -> Vec<Vec<u8>> {
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        for (reader, &length) in readers.iter_mut().zip(lengths) {
            let mut bytes = Vec::new();
            while bytes.len() < length {
                match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer)).await {
                    Ok(Ok(read @ 1..)) => bytes.extend_from_slice(&buffer[..read]),
                    _ => break,
                }
            }
            received.push(bytes);
        }
        received
    }

    /// Whether this process may set up an io_uring (a container's seccomp profile may forbid it).
    #[cfg(target_os = "linux")]
    fn io_uring_permitted() -> bool {
        io_uring::IoUring::new(4).is_ok()
    }

    /// A batch of direct writes reaches every connection whole, through the ring where the
    /// kernel permits it and with one write each where it does not.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_batch_writes_every_connection_with_the_ring_and_without() {
        let mut pairs = Vec::new();
        for _ in 0..8 {
            pairs.push(pair().await);
        }
        let (connections, mut readers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let outboxes: Vec<Outbox> = connections.iter().map(Connection::outbox).collect();
        let outboxes: Vec<Option<&Outbox>> = outboxes.iter().map(Some).collect();
        let small = |k: u8| Bytes::from(vec![k; 300]);
        let mut outcomes = Vec::new();
        write_broadcasts(&outboxes, "room:1", |_| Some(small(1)), &mut outcomes);
        assert_eq!(outcomes, vec![Some(Direct::Written); 8]);
        assert_eq!(send_batch::ring::ready_on_this_thread(), io_uring_permitted(), "the ring is used where permitted");
        send_batch::ring::forbid_on_this_thread();
        write_broadcasts(&outboxes, "room:1", |_| Some(small(2)), &mut outcomes);
        assert_eq!(outcomes, vec![Some(Direct::Written); 8]);
        let expected = [small(1), small(2)].concat();
        for received in read_all(&mut readers, &[600; 8]).await {
            assert!(received == expected, "both frames, whole and in order");
        }
        drop(connections);
    }

    /// Through a batch as alone: a socket that takes part of a frame keeps the tail in its
    /// outbox and gets nothing directly until the task has written it; a full socket refuses;
    /// what each reader finally reads is the frames it was given, whole and in order.
    #[tokio::test]
    async fn a_batch_keeps_tails_and_order_as_single_writes_do() {
        let mut pairs = Vec::new();
        for _ in 0..6 {
            pairs.push(pair().await);
        }
        let (mut connections, mut readers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let owned: Vec<Outbox> = connections.iter().map(Connection::outbox).collect();
        let outboxes: Vec<Option<&Outbox>> = owned.iter().map(Some).collect();
        let mut given: Vec<Vec<u8>> = vec![Vec::new(); owned.len()];
        let mut received: Vec<Vec<u8>> = vec![Vec::new(); owned.len()];
        let mut had_tail = vec![false; owned.len()];
        let mut buffer = vec![0u8; 64 * 1024];
        let mut outcomes = Vec::new();
        let mut k = 0u8;
        // Until every socket has taken part of a frame: a refused socket's reader reads what it has,
        // which leaves room for part of the next.
        while had_tail.contains(&false) {
            let waiting: Vec<bool> = owned.iter().map(|outbox| !outbox.state().unsent.is_empty()).collect();
            write_broadcasts(&outboxes, "room:1", |_| Some(frame(k)), &mut outcomes);
            for (index, outcome) in outcomes.iter().enumerate() {
                if waiting[index] {
                    assert_eq!(*outcome, Some(Direct::Queue), "nothing directly while a tail waits");
                }
                match outcome {
                    Some(Direct::Written) => given[index].extend_from_slice(&frame(k)),
                    Some(Direct::Queue) if !waiting[index] => {
                        let read = readers[index].read(&mut buffer).await.expect("read");
                        received[index].extend_from_slice(&buffer[..read]);
                    }
                    Some(Direct::Queue) => {}
                    other => panic!("unexpected {other:?}"),
                }
                had_tail[index] |= !owned[index].state().unsent.is_empty();
            }
            k += 1;
            assert!(k < 250, "the sockets never took part of a frame");
        }
        // The tasks write the tails out and end their connections while the readers read the
        // rest, each to its end.
        let reading: Vec<_> = readers
            .into_iter()
            .map(|mut reader| {
                tokio::spawn(async move {
                    let mut rest = Vec::new();
                    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest)).await.map(|_| rest)
                })
            })
            .collect();
        for connection in &mut connections {
            connection.shutdown().await.expect("flush and shut down");
        }
        for ((mut received, reading), given) in received.into_iter().zip(reading).zip(&given) {
            received.extend_from_slice(&reading.await.expect("read").expect("the rest within 10 s"));
            assert!(
                received == *given,
                "what was taken arrives whole and in order ({} of {} bytes)",
                received.len(),
                given.len()
            );
        }
    }

    /// An outbox whose lock is held elsewhere is left to the caller (no waiting for it while
    /// others are held); a socket without an outbox goes through its queue.
    #[tokio::test]
    async fn a_batch_leaves_a_busy_outbox_to_the_caller() {
        let (first, _first_reader) = pair().await;
        let (second, _second_reader) = pair().await;
        let (busy, free) = (first.outbox(), second.outbox());
        let held = busy.state();
        let mut outcomes = Vec::new();
        write_broadcasts(&[Some(&busy), Some(&free), None], "room:1", |_| Some(frame(0)), &mut outcomes);
        assert_eq!(outcomes, vec![None, Some(Direct::Written), Some(Direct::Queue)]);
        drop(held);
    }

    /// A send that may have gone in part (the ring failed under it) ends the connection:
    /// nothing could follow a frame cut anywhere.
    #[tokio::test]
    async fn a_send_of_unknown_fate_shuts_the_connection() {
        let (connection, mut reader) = pair().await;
        let outbox = connection.outbox();
        let send = Outgoing { stream: connection.stream.clone(), bytes: frame(0) };
        assert_eq!(outbox.settle(outbox.state(), &send, Sent::Unknown), Direct::Closed);
        assert_eq!(outbox.write_broadcast("room:1", |_| Some(frame(1))), Direct::Closed);
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer)).await.expect("the end comes");
        assert!(matches!(read, Ok(0) | Err(_)), "the reader sees the connection end: {read:?}");
        drop(connection);
    }
}
