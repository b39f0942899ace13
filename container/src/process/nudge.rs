//! Notices typed into an agent's terminal ("you have mail"), at a safe moment: never while a
//! person is typing into it, and preferably when the program has stopped printing (at a
//! prompt). The text and the Enter key go separately, because TUIs that read a paste in one
//! chunk treat a trailing CR as part of the text. Each notice has a key: a key already seen in
//! this run is dropped (a retried delivery is not typed twice), and a notice identical to one
//! still waiting is folded into it (a flood becomes one line).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{lock, ProcessError, ProcessManager, Session};

/// Keys remembered per run (oldest forgotten first).
const KEYS_REMEMBERED: usize = 1024;
/// Notices waiting per run; beyond this the oldest are dropped (the mail itself is not lost).
const MAX_WAITING: usize = 32;

/// When a moment is safe.
#[derive(Debug, Clone, Copy)]
pub struct NudgeTiming {
    /// Nobody typed for this long.
    pub typing_quiet: Duration,
    /// The program printed nothing for this long…
    pub output_quiet: Duration,
    /// …or this long has passed (a program that never stops repainting still gets its notice).
    pub output_wait_max: Duration,
    /// Between the text and its Enter.
    pub enter_delay: Duration,
}

impl Default for NudgeTiming {
    fn default() -> Self {
        NudgeTiming {
            typing_quiet: Duration::from_millis(1500),
            output_quiet: Duration::from_millis(300),
            output_wait_max: Duration::from_secs(5),
            enter_delay: Duration::from_millis(150),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NudgeOutcome {
    /// Will be typed at the next safe moment.
    Queued,
    /// The same text is already waiting: one line will cover both.
    Folded,
    /// This key was already delivered (or queued) in this run.
    Duplicate,
}

#[derive(Default)]
pub(super) struct NudgeState {
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    waiting: VecDeque<String>,
    delivering: bool,
}

impl ProcessManager {
    /// Queues a notice for a running agent's terminal.
    pub fn nudge(&self, agent_id: &str, key: &str, text: &str, timing: NudgeTiming) -> Result<NudgeOutcome, ProcessError> {
        let s = self.get(agent_id)?;
        if lock(&s.input).is_none() {
            return Err(ProcessError::NotRunning(agent_id.to_string()));
        }
        // One line, no control characters: a notice must not be able to press keys.
        let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect();
        let mut st = lock(&s.nudges);
        if st.seen.contains(key) {
            return Ok(NudgeOutcome::Duplicate);
        }
        st.seen.insert(key.to_string());
        st.seen_order.push_back(key.to_string());
        if st.seen_order.len() > KEYS_REMEMBERED {
            if let Some(old) = st.seen_order.pop_front() {
                st.seen.remove(&old);
            }
        }
        if st.waiting.contains(&text) {
            return Ok(NudgeOutcome::Folded);
        }
        st.waiting.push_back(text);
        if st.waiting.len() > MAX_WAITING {
            st.waiting.pop_front();
        }
        if !st.delivering {
            st.delivering = true;
            let (pm, s) = (self.clone(), s.clone());
            tokio::spawn(async move { deliver(pm, s, timing).await });
        }
        Ok(NudgeOutcome::Queued)
    }
}

async fn deliver(pm: ProcessManager, s: Arc<Session>, timing: NudgeTiming) {
    loop {
        let waiting_since = Instant::now();
        loop {
            if lock(&s.input).is_none() {
                return; // the run ended; its mail waits for the next run's prompt
            }
            let typed_quiet = lock(&s.last_typed).is_none_or(|t| t.elapsed() >= timing.typing_quiet);
            let output_quiet = s.output.quiet_for(s.started) >= timing.output_quiet || waiting_since.elapsed() >= timing.output_wait_max;
            if typed_quiet && output_quiet {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = {
            let mut st = lock(&s.nudges);
            match st.waiting.pop_front() {
                Some(t) => t,
                None => {
                    st.delivering = false;
                    return;
                }
            }
        };
        if pm.write_input(&s.agent_id, text.into_bytes()).await.is_err() {
            return;
        }
        tokio::time::sleep(timing.enter_delay).await;
        if pm.write_input(&s.agent_id, b"\r".to_vec()).await.is_err() {
            return;
        }
    }
}
