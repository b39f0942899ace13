//! Per-agent terminal output: a bounded scrollback ring plus a live broadcast.
//!
//! Every byte the PTY produces gets a position in one ever-growing stream
//! (its *offset*). The ring keeps the tail of that stream; the broadcast carries
//! new chunks tagged with their offset. Appending and broadcasting happen under
//! the same lock that a new subscriber holds while it copies the ring and
//! subscribes, so a subscriber sees every byte exactly once: the snapshot ends
//! where its first live chunk begins. A subscriber that falls behind the live
//! channel (a slow viewer on a busy machine) catches up from the ring by offset,
//! so it still sees every byte; only bytes that have also left the ring are
//! reported as a gap, with their exact count.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::ExitInfo;

/// What travels on the live channel.
#[derive(Clone, Debug)]
enum LiveMsg {
    Data { offset: u64, data: Bytes },
    Exit(ExitInfo),
}

struct State {
    ring: VecDeque<u8>,
    /// Total number of bytes ever appended (the offset of the next byte).
    total: u64,
    exit: Option<ExitInfo>,
    /// When output last arrived (a program that is printing is not at a prompt).
    last_append: Option<std::time::Instant>,
}

/// Scrollback ring + live fan-out for one agent run.
pub(crate) struct OutputBuffer {
    capacity: usize,
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<LiveMsg>,
}

impl OutputBuffer {
    pub(crate) fn new(capacity: usize, channel_capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(channel_capacity.max(1));
        Self {
            capacity: capacity.max(1),
            state: Arc::new(Mutex::new(State {
                ring: VecDeque::with_capacity(capacity.min(64 * 1024)),
                total: 0,
                exit: None,
                last_append: None,
            })),
            tx,
        }
    }

    /// Appends PTY output. Never waits for subscribers: a full broadcast slot is
    /// simply overwritten and the slow receiver observes a lag.
    pub(crate) fn append(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        let offset = st.total;
        if data.len() >= self.capacity {
            st.ring.clear();
            st.ring.extend(&data[data.len() - self.capacity..]);
        } else {
            let overflow = (st.ring.len() + data.len()).saturating_sub(self.capacity);
            st.ring.drain(..overflow);
            st.ring.extend(data);
        }
        st.total += data.len() as u64;
        st.last_append = Some(std::time::Instant::now());
        // An error only means nobody is listening right now.
        let _ = self.tx.send(LiveMsg::Data { offset, data: Bytes::copy_from_slice(data) });
    }

    /// Records the end of the run; later subscribers get it in their snapshot.
    pub(crate) fn close(&self, exit: ExitInfo) {
        let mut st = lock(&self.state);
        if st.exit.is_none() {
            st.exit = Some(exit.clone());
            let _ = self.tx.send(LiveMsg::Exit(exit));
        }
    }

    pub(crate) fn subscribe(&self) -> OutputSubscription {
        let st = lock(&self.state);
        let (a, b) = st.ring.as_slices();
        let mut scrollback = Vec::with_capacity(a.len() + b.len());
        scrollback.extend_from_slice(a);
        scrollback.extend_from_slice(b);
        let start = st.total - scrollback.len() as u64;
        OutputSubscription {
            scrollback,
            scrollback_start: start,
            exited: st.exit.clone(),
            next_offset: st.total,
            rx: self.tx.subscribe(),
            ring: self.state.clone(),
            pending: None,
            done: st.exit.is_some(),
        }
    }

    /// Bytes currently held in the ring (for status reporting and tests).
    pub(crate) fn scrollback(&self) -> Vec<u8> {
        let st = lock(&self.state);
        st.ring.iter().copied().collect()
    }

    /// How long the terminal has been silent (since the start if it never printed).
    pub(crate) fn quiet_for(&self, started: std::time::Instant) -> std::time::Duration {
        lock(&self.state).last_append.unwrap_or(started).elapsed()
    }

    pub(crate) fn total(&self) -> u64 {
        lock(&self.state).total
    }
}

/// Live output as seen by one subscriber.
#[derive(Debug, Clone)]
pub enum OutputEvent {
    /// Terminal bytes starting at stream position `offset`.
    Data { offset: u64, data: Bytes },
    /// The subscriber fell behind and `missed` bytes were skipped for it.
    Gap { missed: u64 },
    /// The process ended; nothing follows.
    Exit(ExitInfo),
}

/// "Scrollback snapshot + live stream" for one reader, joined without a gap or
/// an overlap at the seam.
pub struct OutputSubscription {
    /// The ring's content at subscription time.
    pub scrollback: Vec<u8>,
    /// Stream offset of `scrollback[0]`.
    pub scrollback_start: u64,
    /// Set when the run had already ended when the subscription was taken.
    pub exited: Option<ExitInfo>,
    next_offset: u64,
    rx: broadcast::Receiver<LiveMsg>,
    /// The buffer's state, read to fill in chunks the live channel dropped for us.
    ring: Arc<Mutex<State>>,
    pending: Option<LiveMsg>,
    done: bool,
}

impl OutputSubscription {
    /// Offset of the next byte this subscriber expects.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Next live event, or `None` once the stream has ended (after `Exit`, or if
    /// the run was already over when subscribing).
    pub async fn recv(&mut self) -> Option<OutputEvent> {
        if self.done {
            return None;
        }
        loop {
            let msg = match self.pending.take() {
                Some(m) => m,
                None => match self.rx.recv().await {
                    Ok(m) => m,
                    // Offsets tell us exactly what was skipped; keep going.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.done = true;
                        return None;
                    }
                },
            };
            match msg {
                LiveMsg::Data { offset, data } => {
                    let end = offset + data.len() as u64;
                    if end <= self.next_offset {
                        continue;
                    }
                    if offset > self.next_offset {
                        // The channel dropped chunks for us: take what the ring still holds.
                        self.pending = Some(LiveMsg::Data { offset, data });
                        return Some(self.catch_up(offset));
                    }
                    // Only possible if a chunk straddles the seam; trim defensively.
                    let skip = (self.next_offset - offset) as usize;
                    let data = data.slice(skip..);
                    let offset = self.next_offset;
                    self.next_offset = end;
                    return Some(OutputEvent::Data { offset, data });
                }
                LiveMsg::Exit(info) => {
                    self.done = true;
                    return Some(OutputEvent::Exit(info));
                }
            }
        }
    }
}

impl OutputSubscription {
    /// Bytes `[next_offset, until)` from the ring, or a gap for the part that has left it.
    fn catch_up(&mut self, until: u64) -> OutputEvent {
        let st = lock(&self.ring);
        let ring_start = st.total - st.ring.len() as u64;
        if self.next_offset < ring_start {
            let missed = ring_start.min(until) - self.next_offset;
            self.next_offset += missed;
            return OutputEvent::Gap { missed };
        }
        let from = (self.next_offset - ring_start) as usize;
        let to = (until.min(st.total) - ring_start) as usize;
        let data: Vec<u8> = st.ring.range(from..to).copied().collect();
        let offset = self.next_offset;
        self.next_offset += data.len() as u64;
        OutputEvent::Data { offset, data: Bytes::from(data) }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the ring inconsistent in a
    // way that matters more than losing all output, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ExitReason;

    fn exit() -> ExitInfo {
        ExitInfo { code: Some(0), signal: None, reason: ExitReason::Exited, spawn_epoch: 1, exited_at_ms: 0 }
    }

    #[test]
    fn ring_keeps_the_tail() {
        let b = OutputBuffer::new(8, 16);
        b.append(b"abcdef");
        b.append(b"ghij");
        assert_eq!(b.scrollback(), b"cdefghij");
        b.append(b"0123456789xyz");
        assert_eq!(b.scrollback(), b"56789xyz");
        assert_eq!(b.total(), 23);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seam_has_no_gap_and_no_duplicate_under_concurrent_writes() {
        let buf = std::sync::Arc::new(OutputBuffer::new(4096, 100_000));
        let writer = {
            let buf = buf.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    buf.append(format!("{i},").as_bytes());
                }
                buf.close(exit());
            })
        };
        let mut subs = Vec::new();
        for _ in 0..20 {
            subs.push(buf.subscribe());
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        writer.join().unwrap();
        let total = buf.total();
        for mut sub in subs {
            let start = sub.scrollback_start;
            let mut got = std::mem::take(&mut sub.scrollback);
            if sub.exited.is_none() {
                while let Some(ev) = sub.recv().await {
                    match ev {
                        OutputEvent::Data { offset, data } => {
                            assert_eq!(offset, start + got.len() as u64);
                            got.extend_from_slice(&data);
                        }
                        OutputEvent::Gap { missed } => panic!("unexpected gap of {missed}"),
                        OutputEvent::Exit(_) => break,
                    }
                }
            }
            assert_eq!(start + got.len() as u64, total);
            // Parse the numbers after the first separator: they must be consecutive.
            let text = String::from_utf8(got).unwrap();
            let nums: Vec<u32> = text.split(',').skip(1).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
            for w in nums.windows(2) {
                assert_eq!(w[1], w[0] + 1, "gap or duplicate at the seam");
            }
            assert_eq!(*nums.last().unwrap(), 19_999);
        }
    }

    /// Drains a subscription: (bytes seen, bytes reported missing).
    async fn drain(sub: &mut OutputSubscription) -> (Vec<u8>, u64) {
        let (mut got, mut missed_total) = (Vec::new(), 0);
        while let Some(ev) = sub.recv().await {
            match ev {
                OutputEvent::Gap { missed } => missed_total += missed,
                OutputEvent::Data { offset, data } => {
                    assert_eq!(offset, got.len() as u64 + missed_total, "offsets are contiguous");
                    got.extend_from_slice(&data);
                }
                OutputEvent::Exit(_) => break,
            }
        }
        (got, missed_total)
    }

    #[tokio::test]
    async fn lagging_subscriber_catches_up_from_the_ring() {
        let buf = OutputBuffer::new(1024, 2);
        let mut sub = buf.subscribe();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let chunk = [b'a' + i % 26; 7];
            buf.append(&chunk);
            expected.extend_from_slice(&chunk);
        }
        buf.close(exit());
        let (got, missed) = drain(&mut sub).await;
        assert_eq!(missed, 0);
        assert_eq!(got, expected, "every byte, once, in order");
    }

    #[tokio::test]
    async fn lagging_subscriber_past_the_ring_sees_an_exact_gap_not_a_block() {
        let buf = OutputBuffer::new(30, 2);
        let mut sub = buf.subscribe();
        for _ in 0..10 {
            buf.append(b"0123456789");
        }
        buf.close(exit());
        let (got, missed) = drain(&mut sub).await;
        assert!(missed > 0, "the ring could not hold everything");
        assert_eq!(missed + got.len() as u64, 100, "seen + missed = everything written");
        assert!(got.ends_with(b"0123456789"));
    }
}
