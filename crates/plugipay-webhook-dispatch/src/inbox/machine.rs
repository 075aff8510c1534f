//! The inbox's one state machine: its states, and every transition as a row
//! of one table (from which states, to which). The backends store *one
//! transition at a time*, atomically with its owner check; their SQL and Lua
//! take the `from` states of each transition from this table, so no backend
//! writes its own rules.
//!
//! ```text
//!             receive (202 once stored)
//!                    │
//!                    ▼
//!   ┌──────── pending ◄────────── retry: failed, attempts < max (backoff, full jitter)
//!   │            │ claim (lease)         ▲
//!   │            ▼                       │
//!   │         running ── done ─────────► done ── prune ──► (gone)
//!   │            │ ▲ └── extend (the lease renewed by its owner)
//!   │            │ └──── claim: the lease lapsed, due again from its expiry
//!   │            ├────── fail: failed, attempts = max ──► dead ── redeliver / revive ──► pending
//!   │            ├────── exhaust: claimed with attempts = max (the worker crashed) ──► dead
//!   │            └────── outdate: claimed, older than its key's high-water mark ──► stale
//!   │                            (ordering; stale ── revive ──► pending)
//!   └── no handler for the type ──► skipped ── revive ──► pending
//! ```

use std::fmt;

/// An event's state in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum State {
    /// Due at its next attempt time.
    Pending,
    /// Claimed by one worker under a lease.
    Running,
    /// Processed.
    Done,
    /// Failed the maximum number of attempts (or was claimed after them).
    Dead,
    /// No handler for its type when it arrived or was claimed
    /// (acknowledged, kept).
    Skipped,
    /// With ordering: older than its key's high-water mark (the newest
    /// `occurred_at` already done for the key) when it came up, so not
    /// handed to the handler (acknowledged, kept).
    Stale,
}

impl State {
    /// Every state.
    pub const ALL: [State; 6] = [
        State::Pending,
        State::Running,
        State::Done,
        State::Dead,
        State::Skipped,
        State::Stale,
    ];

    /// The stored spelling: `pending`, `running`, `done`, `dead`, `skipped`,
    /// `stale`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Dead => "dead",
            State::Skipped => "skipped",
            State::Stale => "stale",
        }
    }

    /// The state a stored spelling names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing moves it on by itself (only a tool or a redelivery).
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transition {
    /// A worker takes a due event under a lease (attempts + 1); a running
    /// event is due again once its lease lapsed.
    Claim,
    /// A claim finds the attempts exhausted: the previous attempt never
    /// finished (the worker crashed or was killed).
    Exhaust,
    /// With ordering, a claim finds the event older than its key's
    /// high-water mark: it is not handed over (unless stale events are
    /// delivered).
    Outdate,
    /// The owner renews its lease.
    Extend,
    /// The owner's handler succeeded (with a transactional handler: in the
    /// same commit as the handler's writes).
    Done,
    /// The owner's handler failed; due again after a backoff.
    Retry,
    /// The owner's handler failed its last attempt.
    Fail,
    /// The owner found no handler for the type.
    Skip,
    /// A redelivery of a dead event: due now, attempts reset.
    Redeliver,
    /// `retry`: a dead, skipped or stale event is due now, attempts reset.
    Revive,
    /// `retry --done --force`: a done event runs again, on purpose.
    Rerun,
    /// `prune`: a done (or, on request, skipped) event is deleted.
    Prune,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) on: Transition,
    pub(crate) from: &'static [State],
    /// `None`: the record is deleted.
    pub(crate) to: Option<State>,
    /// Only the lease's owner may make it (checked in the same statement).
    pub(crate) owned: bool,
    /// Who makes it (for the docs).
    pub(crate) by: &'static str,
}

use State::{Dead, Done, Pending, Running, Skipped, Stale};

/// Every transition, once.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        on: Transition::Claim,
        from: &[Pending, Running],
        to: Some(Running),
        owned: false,
        by: "a worker, once the event is due",
    },
    Rule {
        on: Transition::Exhaust,
        from: &[Pending, Running],
        to: Some(Dead),
        owned: false,
        by: "a worker, once the event is due",
    },
    Rule {
        on: Transition::Outdate,
        from: &[Pending, Running],
        to: Some(Stale),
        owned: false,
        by: "a worker, once the event is due (ordering)",
    },
    Rule {
        on: Transition::Extend,
        from: &[Running],
        to: Some(Running),
        owned: true,
        by: "the lease's owner",
    },
    Rule {
        on: Transition::Done,
        from: &[Running],
        to: Some(Done),
        owned: true,
        by: "the lease's owner",
    },
    Rule {
        on: Transition::Retry,
        from: &[Running],
        to: Some(Pending),
        owned: true,
        by: "the lease's owner",
    },
    Rule {
        on: Transition::Fail,
        from: &[Running],
        to: Some(Dead),
        owned: true,
        by: "the lease's owner",
    },
    Rule {
        on: Transition::Skip,
        from: &[Running],
        to: Some(Skipped),
        owned: true,
        by: "the lease's owner",
    },
    Rule {
        on: Transition::Redeliver,
        from: &[Dead],
        to: Some(Pending),
        owned: false,
        by: "a redelivery (`receive`)",
    },
    Rule {
        on: Transition::Revive,
        from: &[Dead, Skipped, Stale],
        to: Some(Pending),
        owned: false,
        by: "`inbox retry --dead / --skipped / --stale / ID`",
    },
    Rule {
        on: Transition::Rerun,
        from: &[Done],
        to: Some(Pending),
        owned: false,
        by: "`inbox retry --done ID --force`",
    },
    Rule {
        on: Transition::Prune,
        from: &[Done, Skipped],
        to: None,
        owned: false,
        by: "`inbox prune` (skipped: `--skipped`)",
    },
];

/// The row of `on`.
pub(crate) fn rule(on: Transition) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.on == on)
        .expect("every transition has a row in RULES")
}

/// The state `on` leads to from `from`, if it applies there.
#[cfg_attr(not(test), allow(dead_code, reason = "the model of the tests"))]
pub(crate) fn next(from: State, on: Transition) -> Option<Option<State>> {
    let r = rule(on);
    r.from.contains(&from).then_some(r.to)
}

/// `'a', 'b'`: the `from` states of `on`, as SQL string literals (what the
/// statement files must hold: checked by `inbox::sql`'s tests).
#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn from_list(on: Transition) -> String {
    rule(on)
        .from
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one state every owned transition starts from (the Lua scripts'; the
/// SQL files' are checked against it).
#[cfg(any(test, feature = "redis"))]
pub(crate) fn owned_from() -> State {
    let mut owned = RULES.iter().filter(|r| r.owned);
    let first = owned.next().expect("owned transitions").from;
    assert!(
        first.len() == 1 && owned.all(|r| r.from == first),
        "every owned transition starts from one state"
    );
    first[0]
}

/// What an owned transition stores: the new state, when the event is due
/// next (a retry's backoff, an extended lease's expiry), the error it keeps,
/// and whether the attempt it took is given back (the handler never ran).
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) on: Transition,
    pub(crate) due_in_ms: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) refund: bool,
    /// The handlers' states to store with it (JSON; `None`: unchanged).
    pub(crate) progress: Option<String>,
}

impl Move {
    fn new(on: Transition) -> Move {
        debug_assert!(rule(on).owned, "{on:?} is not an owned transition");
        Move {
            on,
            due_in_ms: None,
            error: None,
            refund: false,
            progress: None,
        }
    }

    pub(crate) fn done() -> Move {
        Move::new(Transition::Done)
    }

    pub(crate) fn extend(lease_ms: i64) -> Move {
        Move {
            due_in_ms: Some(lease_ms),
            ..Move::new(Transition::Extend)
        }
    }

    pub(crate) fn retry(after_ms: i64, why: String) -> Move {
        Move {
            due_in_ms: Some(after_ms),
            error: Some(why),
            ..Move::new(Transition::Retry)
        }
    }

    pub(crate) fn fail(why: String) -> Move {
        Move {
            error: Some(why),
            ..Move::new(Transition::Fail)
        }
    }

    pub(crate) fn skip() -> Move {
        Move::new(Transition::Skip)
    }

    /// The attempt the claim counted is given back: the handler never ran.
    pub(crate) fn refunded(mut self) -> Move {
        self.refund = true;
        self
    }

    /// Stores the handlers' states with it.
    pub(crate) fn with_progress(mut self, progress: String) -> Move {
        self.progress = Some(progress);
        self
    }

    /// The state it leads to.
    pub(crate) fn to(&self) -> State {
        rule(self.on).to.expect("owned transitions keep the record")
    }
}

/// The error a claim records when it finds the attempts exhausted.
pub(crate) const EXHAUSTED_RUNNING: &str =
    "attempts exhausted: the worker did not finish (crash or kill)";
/// The error a claim records when it takes a running event whose lease
/// lapsed: the attempt before was cut short (its handlers' history gets a
/// [`CutShort`](super::types::AttemptOutcome::CutShort) entry).
pub(crate) const CUT_SHORT: &str =
    "the previous attempt was cut short: its worker stopped (crash or kill) or lost its lease";
/// The same, for a pending event (the maximum was lowered since).
#[cfg(any(test, feature = "redis"))]
pub(crate) const EXHAUSTED_PENDING: &str = "attempts exhausted";

/// The table as Markdown (`docs/inbox.md` holds it; a test keeps them equal).
pub(crate) fn table_markdown() -> String {
    let mut out = String::from("| transition | from | to | by |\n|---|---|---|---|\n");
    for r in RULES {
        let from: Vec<&str> = r.from.iter().map(|s| s.as_str()).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            format!("{:?}", r.on).to_lowercase(),
            from.join(", "),
            r.to.map_or("(deleted)", State::as_str),
            r.by,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_has_one_row_and_owned_ones_start_running() {
        for r in RULES {
            assert_eq!(
                RULES.iter().filter(|o| o.on == r.on).count(),
                1,
                "{:?}",
                r.on
            );
        }
        assert_eq!(owned_from(), Running);
    }

    #[test]
    fn terminal_states_move_only_by_tools_or_redelivery() {
        for r in RULES
            .iter()
            .filter(|r| r.from.iter().any(|s| s.is_terminal()))
        {
            assert!(
                matches!(
                    r.on,
                    Transition::Redeliver
                        | Transition::Revive
                        | Transition::Rerun
                        | Transition::Prune
                ),
                "{:?} moves a terminal state",
                r.on
            );
        }
        assert_eq!(next(Done, Transition::Claim), None);
        assert_eq!(next(Running, Transition::Claim), Some(Some(Running)));
        assert_eq!(next(Dead, Transition::Redeliver), Some(Some(Pending)));
        assert_eq!(next(Skipped, Transition::Redeliver), None);
        assert_eq!(next(Done, Transition::Prune), Some(None));
        assert_eq!(
            next(Dead, Transition::Prune),
            None,
            "dead events are never pruned"
        );
        assert_eq!(next(Pending, Transition::Prune), None);
    }

    #[test]
    fn the_docs_show_this_table() {
        let docs = include_str!("../../../../docs/inbox.md");
        assert!(
            docs.contains(&table_markdown()),
            "docs/inbox.md must hold the transition table exactly:\n{}",
            table_markdown()
        );
    }
}
