//! UDP without hickory: one worker thread per socket, all sockets bound to the same address with
//! `SO_REUSEPORT` so the kernel spreads clients over them. Each worker takes datagrams in batches
//! (`recvmmsg`), answers each in the buffer it arrived in ([`FastPath`], or the [`Responder`] for
//! anything unusual), and sends the batch's replies with one `sendmmsg`. Nothing is allocated per
//! query on the fast path, and the worker never logs per query.
//!
//! Stopping: [`UdpWorkers::stop`] sets a flag and shuts each socket down for reading, which wakes a
//! worker blocked in `recvmmsg`; the socket's read timeout ([`IDLE_WAKE`]) is the backstop, and
//! also wakes an idle worker to flush its counters.

use std::io::{IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use socket2::Socket;
use tracing::{debug, warn};

use crate::answer::{Responder, Transport};
use crate::fast::{Fast, FastPath};

/// Datagrams taken per `recvmmsg` and replies sent per `sendmmsg`.
const BATCH: usize = 32;

/// Room for one datagram: hickory's receive buffer size, so a longer datagram is cut where hickory
/// cut it.
const SLOT: usize = 4096;

/// How long a worker waits for a datagram before it looks at the stop flag and its counters.
pub(crate) const IDLE_WAKE: Duration = Duration::from_millis(200);

/// How often a busy worker adds its counts to `ddns_dns_queries_total`.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The UDP workers of one server.
pub(crate) struct UdpWorkers {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<Socket>>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpWorkers {
    /// Starts one worker per socket.
    pub(crate) fn start(
        sockets: Vec<Socket>,
        fast: Arc<FastPath>,
        responder: Arc<Responder>,
    ) -> std::io::Result<UdpWorkers> {
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Vec<Arc<Socket>> = sockets.into_iter().map(Arc::new).collect();
        let mut workers = UdpWorkers {
            stop: stop.clone(),
            sockets: sockets.clone(),
            threads: Vec::with_capacity(sockets.len()),
        };
        for (index, socket) in sockets.into_iter().enumerate() {
            let (stop, fast, responder) = (stop.clone(), fast.clone(), responder.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ddns-dns-udp-{index}"))
                .spawn(move || serve(&socket, &fast, &responder, &stop))?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Tells every worker to stop and wakes it; returns at once.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for socket in &self.sockets {
            // On an unconnected UDP socket Linux reports ENOTCONN, and still marks the socket shut
            // for reading and wakes its readers.
            let _ = socket.shutdown(Shutdown::Read);
        }
    }

    /// Stops the workers and waits until each has ended and closed its socket.
    pub(crate) fn join(mut self) {
        self.stop();
        self.sockets.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                warn!("a DNS UDP worker panicked");
            }
        }
    }
}

impl Drop for UdpWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One worker: receive a batch, answer each datagram in place, send the replies, until stopped.
fn serve(socket: &Socket, fast: &FastPath, responder: &Responder, stop: &AtomicBool) {
    let fd = socket.as_raw_fd();
    let mut slab = vec![0u8; BATCH * SLOT];
    let mut receive_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received_lens = [0usize; BATCH];
    let mut senders: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let mut counts = Counts::new();

    while !stop.load(Ordering::Acquire) {
        let received = {
            let mut slots = slab.chunks_exact_mut(SLOT);
            let mut buffers: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
            match recvmmsg(
                fd,
                &mut receive_headers,
                buffers.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => {
                    let mut count = 0;
                    for (message, (len, sender)) in
                        messages.zip(received_lens.iter_mut().zip(senders.iter_mut()))
                    {
                        *len = message.bytes;
                        *sender = message.address;
                        count += 1;
                    }
                    count
                }
                // The read timeout, or a signal.
                Err(Errno::EAGAIN | Errno::EINTR) => 0,
                Err(error) => {
                    if !stop.load(Ordering::Acquire) {
                        warn!(%error, "DNS UDP receive failed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    0
                }
            }
        };

        // Answer each datagram in its slot, and line the replies up for one sendmmsg.
        let mut replies = [(0usize, 0usize); BATCH];
        let mut targets: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
        let mut reply_count = 0;
        for (index, slot) in slab.chunks_exact_mut(SLOT).take(received).enumerate() {
            let len = received_lens[index].min(SLOT);
            let Some(reply_len) = answer(fast, responder, slot, len, &mut counts) else {
                continue;
            };
            replies[reply_count] = (index, reply_len);
            targets[reply_count] = senders[index];
            reply_count += 1;
        }
        if reply_count > 0 {
            send_all(
                fd,
                &mut send_headers,
                &slab,
                &replies[..reply_count],
                &targets[..reply_count],
            );
        }
        counts.flush_if_due();
    }
    counts.flush();
    debug!("DNS UDP worker stopped");
}

/// The reply to the datagram in `slot[..len]`, written over it; `None` if it gets none.
fn answer(
    fast: &FastPath,
    responder: &Responder,
    slot: &mut [u8],
    len: usize,
    counts: &mut Counts,
) -> Option<usize> {
    match fast.answer(slot, len) {
        Fast::Reply(reply_len) => {
            counts.add(slot[3] & 0x0f);
            (reply_len <= slot.len()).then_some(reply_len)
        }
        Fast::Drop => None,
        // The Responder counts its own replies.
        Fast::Slow => {
            let reply = responder.respond(slot.get(..len)?, Transport::Udp)?;
            let dest = slot.get_mut(..reply.len())?;
            dest.copy_from_slice(&reply);
            Some(reply.len())
        }
    }
}

/// Sends each reply (`(slot, len)`: the first `len` bytes of that slot of `slab`) to its target;
/// a reply the kernel refuses is skipped, the rest still go.
fn send_all(
    fd: i32,
    headers: &mut MultiHeaders<SockaddrStorage>,
    slab: &[u8],
    replies: &[(usize, usize)],
    targets: &[Option<SockaddrStorage>],
) {
    let mut first = 0;
    while first < replies.len() {
        let buffers: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
            let reply = replies
                .get(first + i)
                .and_then(|&(slot, len)| slab.get(slot * SLOT..slot * SLOT + len))
                .unwrap_or_default();
            [IoSlice::new(reply)]
        });
        let no_control: [ControlMessage<'_>; 0] = [];
        let pending = replies.len() - first;
        match sendmmsg(
            fd,
            headers,
            buffers.iter().take(pending),
            &targets[first..],
            no_control,
            MsgFlags::empty(),
        ) {
            Ok(sent) => {
                let sent = sent.count();
                // Zero would mean no progress; skip one rather than loop.
                first += sent.max(1);
            }
            Err(Errno::EINTR) => {}
            Err(error) => {
                debug!(%error, "DNS UDP reply not sent");
                first += 1;
            }
        }
    }
}

/// Per-worker reply counts by RCODE, added to `ddns_dns_queries_total` every [`FLUSH_EVERY`] so
/// that the hot path touches no shared counter.
struct Counts {
    noerror: u64,
    nxdomain: u64,
    refused: u64,
    flushed_at: Instant,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            noerror: 0,
            nxdomain: 0,
            refused: 0,
            flushed_at: Instant::now(),
        }
    }

    /// Counts one fast reply; the fast path answers only these three.
    fn add(&mut self, rcode: u8) {
        match rcode {
            0 => self.noerror += 1,
            3 => self.nxdomain += 1,
            _ => self.refused += 1,
        }
    }

    fn flush_if_due(&mut self) {
        if self.flushed_at.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Adds the counts to the metrics and starts over. The counter handles are looked up here, not
    /// kept, because the binary installs its recorder after the server starts.
    fn flush(&mut self) {
        for (rcode, count) in [
            ("NOERROR", &mut self.noerror),
            ("NXDOMAIN", &mut self.nxdomain),
            ("REFUSED", &mut self.refused),
        ] {
            if *count > 0 {
                metrics::counter!("ddns_dns_queries_total", "rcode" => rcode).increment(*count);
                *count = 0;
            }
        }
        self.flushed_at = Instant::now();
    }
}
