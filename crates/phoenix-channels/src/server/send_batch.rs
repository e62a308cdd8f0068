//! Many sends to many sockets in one system call, through io_uring where the kernel offers it.
//!
//! Why: a fan-out writes the same frame to thousands of connections, and each `write` is a
//! system call whose entry and exit (with the kernel's speculative-execution mitigations) cost
//! about as much as the TCP work it does. io_uring takes a batch of sends in one
//! `io_uring_enter`; a non-blocking send completes within that call, so the batch is done
//! when it returns. Measured on a 2-core EPYC (a bare writer, 10 000 connections, 418-byte
//! frames, the readers on another host's network stack): 6.5 µs of CPU per `write`, 4.3 µs per
//! send in batches of 64 (`bench/history.md`).
//!
//! No crate does this one thing: tokio-uring and its kin run their own event loop and own the
//! sockets, where these sockets belong to tokio. So this module drives a ring with the
//! `io-uring` crate itself, one ring per thread, used synchronously: it submits a batch and
//! waits for every completion before it returns. Where io_uring is missing or forbidden (an
//! old kernel, `kernel.io_uring_disabled`, a container's seccomp profile), each send is one
//! `write`, as before.
//!
//! Public so that a benchmark can measure these very sends with nothing else of a server
//! around them; [`super::broadcast_all`] is what servers use.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;

/// Sends one batch holds at most (and the caller holds that many outboxes' locks meanwhile:
/// 64 sends are a few hundred microseconds).
pub const BATCH: usize = 64;

/// Batches smaller than this go out one `write` each: a ring saves nothing on one or two sends
/// (one system call either way), and a 1:1 message's fan-out is that size.
const RING_FROM: usize = 4;

/// One send: all of `bytes` to `stream`, if it takes them.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The socket.
    pub stream: Arc<TcpStream>,
    /// What to send it.
    pub bytes: Bytes,
}

/// What became of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The socket took this many bytes from the start (maybe fewer than all).
    Wrote(usize),
    /// The socket took nothing: it is full, or failing (whoever reads it finds out which).
    Refused,
    /// The ring failed in the middle of the batch: some of the bytes may have gone.
    Unknown,
}

/// Sends each of `sends` (at most [`BATCH`]), each to its own socket; returns what became of
/// each, in order.
pub fn send_all(sends: &[Outgoing]) -> Vec<Sent> {
    debug_assert!(sends.len() <= BATCH, "a batch is at most {BATCH} sends");
    if sends.len() >= RING_FROM
        && let Some(sent) = ring::send_all(sends)
    {
        return sent;
    }
    sends.iter().map(send_one).collect()
}

/// One send as one `write`.
pub(super) fn send_one(send: &Outgoing) -> Sent {
    match send.stream.try_write(&send.bytes) {
        Ok(0) | Err(_) => Sent::Refused,
        Ok(written) => Sent::Wrote(written),
    }
}

/// This thread's io_uring, on Linux.
#[cfg(target_os = "linux")]
pub(super) mod ring {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::AsRawFd as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    use io_uring::{IoUring, opcode, types};

    use super::{BATCH, Outgoing, Sent};

    /// The batch through this thread's ring; `None` when it has none.
    pub(super) fn send_all(sends: &[Outgoing]) -> Option<Vec<Sent>> {
        RING.try_with(|ring| ring.borrow_mut().send_all(sends)).ok().flatten()
    }

    thread_local! {
        static RING: RefCell<Ring> = const { RefCell::new(Ring::Untried) };
    }

    /// This thread's ring.
    enum Ring {
        /// Not needed yet.
        Untried,
        /// Boxed: the ring is a few hundred bytes, the other states none.
        Ready(Box<IoUring>),
        /// io_uring is missing or forbidden here, or failed once: one `write` per send.
        Unavailable,
    }

    /// Whether io_uring's absence has been logged (once per process, not per thread).
    static ABSENCE_LOGGED: AtomicBool = AtomicBool::new(false);

    impl Ring {
        /// The batch through the ring; `None` when this thread has none.
        fn send_all(&mut self, sends: &[Outgoing]) -> Option<Vec<Sent>> {
            if matches!(self, Ring::Untried) {
                *self = match IoUring::new(BATCH as u32).and_then(tried) {
                    Ok(ring) => Ring::Ready(Box::new(ring)),
                    Err(error) => {
                        if !ABSENCE_LOGGED.swap(true, Ordering::Relaxed) {
                            tracing::info!(%error, "io_uring is not available: fan-outs write each socket with its own system call");
                        }
                        Ring::Unavailable
                    }
                };
            }
            let Ring::Ready(ring) = self else { return None };
            match submit(ring, sends) {
                Ok(sent) => Some(sent),
                Err(error) => {
                    tracing::warn!(%error, "io_uring failed: the connections of its batch are closed, and this thread writes each socket with its own system call from now on");
                    // The kernel may still hold this batch's sends, which point into its buffers
                    // and at its sockets: the ring, the buffers and the sockets are kept forever so
                    // that none of that memory or those descriptors is ever reused.
                    std::mem::forget(std::mem::replace(self, Ring::Unavailable));
                    std::mem::forget(sends.to_vec());
                    Some(vec![Sent::Unknown; sends.len()])
                }
            }
        }
    }

    /// `ring`, once a no-op has gone through it: a sandbox may let a ring be set up and still
    /// refuse `io_uring_enter`, and better to learn that here than with a batch of sends.
    fn tried(mut ring: IoUring) -> io::Result<IoUring> {
        // SAFETY: a no-op points at no memory.
        #[expect(unsafe_code, reason = "the io-uring crate marks every submission unsafe")]
        let pushed = unsafe { ring.submission().push(&opcode::Nop::new().build()) };
        pushed.map_err(|_| io::Error::other("the submission queue is full"))?;
        // Until its completion is reaped: a signal may end the wait after the submission, and
        // a completion left behind would be taken for a send's.
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            if ring.completion().next().is_some() {
                return Ok(ring);
            }
        }
    }

    /// Submits one send per entry of `sends` and waits for all of them.
    fn submit(ring: &mut IoUring, sends: &[Outgoing]) -> io::Result<Vec<Sent>> {
        {
            let mut queue = ring.submission();
            for (index, send) in sends.iter().enumerate() {
                // A frame longer than u32::MAX bytes goes in part; the rest waits as any tail does.
                let length = u32::try_from(send.bytes.len()).unwrap_or(u32::MAX);
                let entry = opcode::Send::new(types::Fd(send.stream.as_raw_fd()), send.bytes.as_ptr(), length)
                    // Never wait for room in the socket (a full socket answers EAGAIN at once),
                    // and never raise SIGPIPE on a closed one.
                    .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(index as u64);
                // SAFETY: the entry points at `send.bytes` and `send.stream`'s descriptor, which
                // the caller holds until this function returns; it returns only once every entry
                // has completed, or after a failure upon which the caller's `Ring::send_all` keeps
                // the buffers and descriptors forever.
                #[expect(unsafe_code, reason = "io_uring reads the buffer after the call that submits it")]
                let pushed = unsafe { queue.push(&entry) };
                pushed.map_err(|_| io::Error::other("the submission queue is full"))?;
            }
        }
        let mut sent = vec![Sent::Unknown; sends.len()];
        let mut completed = 0;
        while completed < sends.len() {
            // Submits what is queued (the first time) and waits; a signal cuts the wait short.
            match ring.submit_and_wait(sends.len() - completed) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            for completion in ring.completion() {
                let slot = usize::try_from(completion.user_data())
                    .ok()
                    .and_then(|index| sent.get_mut(index))
                    .ok_or_else(|| io::Error::other("a completion for no send of this batch"))?;
                *slot = match usize::try_from(completion.result()) {
                    Ok(0) | Err(_) => Sent::Refused,
                    Ok(written) => Sent::Wrote(written),
                };
                completed += 1;
            }
        }
        Ok(sent)
    }

    /// Gives this thread no ring, as where io_uring is forbidden.
    #[cfg(test)]
    pub(in crate::server) fn forbid_on_this_thread() {
        RING.with(|ring| *ring.borrow_mut() = Ring::Unavailable);
    }

    /// Whether this thread sends through a ring.
    #[cfg(test)]
    pub(in crate::server) fn ready_on_this_thread() -> bool {
        RING.with(|ring| matches!(*ring.borrow(), Ring::Ready(_)))
    }
}

/// No io_uring elsewhere.
#[cfg(not(target_os = "linux"))]
pub(super) mod ring {
    use super::{Outgoing, Sent};

    pub(super) fn send_all(_: &[Outgoing]) -> Option<Vec<Sent>> {
        None
    }
}
