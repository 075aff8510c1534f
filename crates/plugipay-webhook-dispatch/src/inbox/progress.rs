//! Each (event, handler) pair's own state: stored with the event (one JSON
//! column, or one Redis hash field) and written by the same owner-checked
//! transitions that move the event — or, for a transactional handler, in
//! its own transaction with its writes. An event is `done` once every
//! handler it has is; a success is never rerun because a sibling failed.

use serde::{Deserialize, Serialize};

use super::types::{AttemptOutcome, AttemptRecord, HandlerState, HandlerStatus};

/// How many attempts each (event, handler) keeps.
pub const HISTORY_LEN: usize = 20;
/// The longest error message an attempt keeps (characters).
pub const HISTORY_ERROR_LEN: usize = 500;

/// `inbox retry --handler NAME` sets this: only `NAME` runs on the next
/// claim (unless it is done already); `*`: every handler runs again (a
/// done event rerun on purpose).
pub(crate) const RERUN_ALL: &str = "*";
/// A revived event (`inbox retry` of a dead one, or Plugipay's redelivery
/// of it): every handler not done runs again, the dead ones included —
/// without a mark, a dead handler stays dead while its siblings run on.
pub(crate) const RERUN_NOT_DONE: &str = "!";

/// The handlers' states of one event, in the order they were first run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Progress(pub(crate) Vec<HandlerStatus>);

impl Progress {
    /// Reads a stored value; `None`, empty or unreadable: nothing recorded
    /// (an event stored before handlers had states).
    pub(crate) fn parse(stored: Option<&str>) -> Progress {
        stored
            .filter(|s| !s.is_empty())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".to_owned())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&HandlerStatus> {
        self.0.iter().find(|h| h.name == name)
    }

    fn entry(&mut self, name: &str) -> &mut HandlerStatus {
        if let Some(i) = self.0.iter().position(|h| h.name == name) {
            return &mut self.0[i];
        }
        self.0.push(HandlerStatus {
            name: name.to_owned(),
            state: HandlerState::Pending,
            attempts: 0,
            last_error: None,
            history: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }

    /// Whether `name` runs on this claim, given the event's rerun mark: a
    /// done handler only on `*`, a dead one only when the mark reopens it
    /// (it was alerted when it died; it does not run, or die, again until a
    /// tool or a redelivery asks).
    pub(crate) fn should_run(&self, name: &str, rerun: Option<&str>) -> bool {
        let state = self.get(name).map(|h| h.state);
        let done = state == Some(HandlerState::Done);
        match rerun {
            Some(RERUN_ALL) => true,
            Some(RERUN_NOT_DONE) => !done,
            Some(only) => only == name && !done,
            None => !done && state != Some(HandlerState::Dead),
        }
    }

    /// A handler a rerun mark runs again starts afresh: pending, its
    /// attempts from 0 (its history kept). Stored with the run's outcome,
    /// which also settles the mark.
    pub(crate) fn reopen(&mut self, name: &str) {
        let h = self.entry(name);
        h.state = HandlerState::Pending;
        h.attempts = 0;
    }

    /// `name`'s attempts so far (since it was last reopened).
    pub(crate) fn attempts(&self, name: &str) -> u32 {
        self.get(name).map_or(0, |h| h.attempts)
    }

    /// Records one attempt of `name`: done, failed (due again) or dead.
    pub(crate) fn record(
        &mut self,
        name: &str,
        started_at_ms: i64,
        took_ms: u64,
        result: Result<(), &str>,
        dead: bool,
    ) {
        let h = self.entry(name);
        h.attempts = h.attempts.saturating_add(1);
        let error = result.err().map(truncate);
        h.state = match (&error, dead) {
            (None, _) => HandlerState::Done,
            (Some(_), false) => HandlerState::Failed,
            (Some(_), true) => HandlerState::Dead,
        };
        if error.is_some() {
            h.last_error.clone_from(&error);
        }
        h.history.push(AttemptRecord {
            started_at_ms,
            took_ms,
            outcome: if error.is_none() {
                AttemptOutcome::Done
            } else {
                AttemptOutcome::Failed
            },
            error,
        });
        let excess = h.history.len().saturating_sub(HISTORY_LEN);
        h.history.drain(..excess);
    }

    /// Records that an attempt which was due to run `name` was cut short
    /// (noticed at `at_ms`): in its history only — not an attempt of its.
    pub(crate) fn cut_short(&mut self, name: &str, at_ms: i64, why: &str) {
        let h = self.entry(name);
        h.history.push(AttemptRecord {
            started_at_ms: at_ms,
            took_ms: 0,
            outcome: AttemptOutcome::CutShort,
            error: Some(truncate(why)),
        });
        let excess = h.history.len().saturating_sub(HISTORY_LEN);
        h.history.drain(..excess);
    }

    /// Marks `name` dead without an attempt (the event itself cannot run:
    /// its attempts were exhausted by crashes, or its body is unreadable).
    pub(crate) fn kill(&mut self, name: &str, why: &str) {
        let h = self.entry(name);
        h.state = HandlerState::Dead;
        h.last_error = Some(truncate(why));
    }

    /// The event's outcome from the states of its registered handlers (one
    /// that has not run yet is pending; a state of a handler no longer
    /// registered does not count): due again while one is failing or has
    /// not run, dead when none is but one is dead, else done.
    pub(crate) fn outcome<'n>(
        &self,
        registered: impl IntoIterator<Item = &'n str>,
    ) -> HandlerState {
        let states: Vec<HandlerState> = registered
            .into_iter()
            .map(|name| self.get(name).map_or(HandlerState::Pending, |h| h.state))
            .collect();
        let has = |s| states.contains(&s);
        if has(HandlerState::Failed) || has(HandlerState::Pending) {
            HandlerState::Failed
        } else if has(HandlerState::Dead) {
            HandlerState::Dead
        } else {
            HandlerState::Done
        }
    }
}

/// An error message cut to [`HISTORY_ERROR_LEN`] characters.
fn truncate(error: &str) -> String {
    match error.char_indices().nth(HISTORY_ERROR_LEN) {
        Some((at, _)) => format!("{}…", &error[..at]),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_is_kept_while_a_sibling_fails() {
        let mut p = Progress::default();
        p.record("ledger", 1, 2, Ok(()), false);
        p.record("notify", 1, 2, Err("smtp down"), false);
        let both = ["ledger", "notify"];
        assert_eq!(p.outcome(both), HandlerState::Failed);
        assert!(!p.should_run("ledger", None));
        assert!(p.should_run("notify", None));
        let back = Progress::parse(Some(&p.to_json()));
        assert_eq!(back, p);
        p.record("notify", 3, 2, Err("smtp down"), true);
        assert_eq!(p.outcome(both), HandlerState::Dead);
        assert!(
            !p.should_run("notify", None),
            "a dead one waits for a retry"
        );
        // A registered handler that has not run keeps the event open; one
        // no longer registered does not count.
        assert_eq!(
            p.outcome(["ledger", "notify", "audit"]),
            HandlerState::Failed
        );
        assert_eq!(p.outcome(["ledger"]), HandlerState::Done);
        assert_eq!(p.get("notify").unwrap().attempts, 2);
        assert_eq!(
            p.get("notify").unwrap().last_error.as_deref(),
            Some("smtp down")
        );
    }

    #[test]
    fn a_revival_reopens_the_dead_from_zero() {
        let mut p = Progress::default();
        p.record("ledger", 1, 2, Ok(()), false);
        p.record("notify", 1, 2, Err("x"), false);
        p.record("notify", 2, 2, Err("x"), true);
        assert!(p.should_run("notify", Some(RERUN_NOT_DONE)));
        assert!(!p.should_run("ledger", Some(RERUN_NOT_DONE)));
        p.reopen("notify");
        let n = p.get("notify").unwrap();
        assert_eq!(
            (n.state, n.attempts, n.history.len()),
            (HandlerState::Pending, 0, 2)
        );
        assert!(p.should_run("notify", None));
    }

    #[test]
    fn reruns_follow_the_mark() {
        let mut p = Progress::default();
        p.record("ledger", 1, 2, Ok(()), false);
        p.record("notify", 1, 2, Err("x"), true);
        assert!(p.should_run("notify", Some("notify")));
        assert!(!p.should_run("ledger", Some("notify")));
        assert!(
            !p.should_run("ledger", Some("ledger")),
            "a done one is not rerun by name"
        );
        assert!(p.should_run("ledger", Some(RERUN_ALL)));
        assert!(
            p.should_run("audit", None),
            "a handler added later runs on open events"
        );
        assert!(!p.should_run("audit", Some("notify")));
    }

    #[test]
    fn history_is_bounded_and_errors_truncated() {
        let mut p = Progress::default();
        let long = "é".repeat(2 * HISTORY_ERROR_LEN);
        for i in 0..30 {
            p.record("notify", i, 1, Err(&long), false);
        }
        let h = p.get("notify").unwrap();
        assert_eq!(h.history.len(), HISTORY_LEN);
        assert_eq!(h.history[0].started_at_ms, 10);
        assert_eq!(h.attempts, 30);
        assert_eq!(
            h.history[0].error.as_ref().unwrap().chars().count(),
            HISTORY_ERROR_LEN + 1
        );
    }

    #[test]
    fn unreadable_values_are_nothing_recorded() {
        assert_eq!(Progress::parse(None), Progress::default());
        assert_eq!(Progress::parse(Some("")), Progress::default());
        assert_eq!(Progress::parse(Some("{not json")), Progress::default());
    }
}
