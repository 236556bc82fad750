//! The stage table: the only edges a task may move along.
//!
//! `STAGE_TRANSITIONS` is the single source of truth, printed by `orch doctor` and the man page.
//! Forward edges walk the pipeline, rollback edges return to `development`, and every
//! non-terminal stage may be cancelled. `done` and `cancelled` are terminal.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Serialize, Serializer};

/// A stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    Created,
    Analysis,
    Architecture,
    Development,
    Review,
    Testing,
    DeployStaging,
    Deploy,
    Done,
    Cancelled,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Created,
        Stage::Analysis,
        Stage::Architecture,
        Stage::Development,
        Stage::Review,
        Stage::Testing,
        Stage::DeployStaging,
        Stage::Deploy,
        Stage::Done,
        Stage::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Analysis => "analysis",
            Stage::Architecture => "architecture",
            Stage::Development => "development",
            Stage::Review => "review",
            Stage::Testing => "testing",
            Stage::DeployStaging => "deploy-staging",
            Stage::Deploy => "deploy",
            Stage::Done => "done",
            Stage::Cancelled => "cancelled",
        }
    }

    /// `done` and `cancelled`: no edge leaves them, and nothing is ever routed onto them.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Cancelled)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("unknown stage `{s}`"))
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Stores a type that has `as_str` and `FromStr<Err = String>` as its name in a text column.
macro_rules! text_column {
    ($type:ty) => {
        impl rusqlite::types::ToSql for $type {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $type {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}
pub(crate) use text_column;

text_column!(Stage);

/// What kind of move an edge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Forward,
    Rollback,
    Cancel,
}

/// One allowed move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: Stage,
    pub to: Stage,
    pub kind: EdgeKind,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.from, self.to)
    }
}

impl Edge {
    /// The edge as budgets and gate events record it: `from->to`.
    pub fn name(self) -> String {
        format!("{}->{}", self.from, self.to)
    }

    /// The edge a recorded name stands for, when the table has it.
    pub fn from_name(name: &str) -> Option<Edge> {
        let (from, to) = name.split_once("->")?;
        find_edge(from.parse().ok()?, to.parse().ok()?)
    }

    /// Serializes an edge by its recorded name (rows that store it keep their JSON shape).
    pub fn serialize_name<S: Serializer>(edge: &Edge, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&edge.name())
    }
}

impl ToSql for Edge {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.name()))
    }
}

impl FromSql for Edge {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Edge::from_name(name).ok_or_else(|| {
            FromSqlError::Other(format!("unknown edge `{name}` in the database").into())
        })
    }
}

use EdgeKind::{Cancel, Forward, Rollback};
use Stage::*;

const fn edge(from: Stage, to: Stage, kind: EdgeKind) -> Edge {
    Edge { from, to, kind }
}

/// Every edge a task may take; anything else is an illegal transition (exit 5).
pub(crate) const STAGE_TRANSITIONS: &[Edge] = &[
    edge(Created, Analysis, Forward),
    edge(Analysis, Architecture, Forward),
    edge(Architecture, Development, Forward),
    edge(Development, Review, Forward),
    edge(Review, Testing, Forward),
    edge(Testing, DeployStaging, Forward),
    edge(DeployStaging, Deploy, Forward),
    edge(Deploy, Done, Forward),
    edge(Review, Development, Rollback),
    edge(Testing, Development, Rollback),
    edge(DeployStaging, Development, Rollback),
    edge(Deploy, Development, Rollback),
    edge(Created, Cancelled, Cancel),
    edge(Analysis, Cancelled, Cancel),
    edge(Architecture, Cancelled, Cancel),
    edge(Development, Cancelled, Cancel),
    edge(Review, Cancelled, Cancel),
    edge(Testing, Cancelled, Cancel),
    edge(DeployStaging, Cancelled, Cancel),
    edge(Deploy, Cancelled, Cancel),
];

/// The edge `from → to`, when the table has it.
pub(crate) fn find_edge(from: Stage, to: Stage) -> Option<Edge> {
    STAGE_TRANSITIONS
        .iter()
        .copied()
        .find(|e| e.from == from && e.to == to)
}

/// The stages a task at `from` may move to.
pub(crate) fn next_stages(from: Stage) -> Vec<Stage> {
    STAGE_TRANSITIONS
        .iter()
        .filter(|e| e.from == from)
        .map(|e| e.to)
        .collect()
}

/// The stages `orch advance --goal` may name: where the gated forward path ends.
pub(crate) const GOALS: [Stage; 2] = [Deploy, Done];

/// The path a goal walks: `deploy-staging → deploy → done`, the gated forward edges.
const GOAL_PATH: [Stage; 3] = [DeployStaging, Deploy, Done];

/// Whether a task at `at` is still on its way to `goal`: on the goal's path, before it. A goal
/// lives only while this holds; every stage write that ends elsewhere (the goal reached, a
/// rollback, a cancel) drops it.
pub(crate) fn goal_ahead(goal: Stage, at: Stage) -> bool {
    let position = |stage| GOAL_PATH.iter().position(|s| *s == stage);
    GOALS.contains(&goal) && matches!((position(at), position(goal)), (Some(a), Some(g)) if a < g)
}

/// The goals a stage write to `at` keeps (`goal_ahead`), at most two.
pub(crate) fn goals_kept_at(at: Stage) -> [Option<Stage>; 2] {
    GOALS.map(|goal| goal_ahead(goal, at).then_some(goal))
}

/// The forward edge a task at `at` takes next on its way to `goal`; `None` once there (or off
/// the goal's path).
pub(crate) fn toward(goal: Stage, at: Stage) -> Option<Edge> {
    if !goal_ahead(goal, at) {
        return None;
    }
    let next = GOAL_PATH
        .iter()
        .position(|s| *s == at)
        .map(|i| GOAL_PATH[i + 1])?;
    find_edge(at, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_stages_have_no_way_out() {
        for stage in [Done, Cancelled] {
            assert!(next_stages(stage).is_empty());
        }
        for stage in Stage::ALL {
            assert_eq!(
                stage.is_terminal(),
                next_stages(stage).is_empty(),
                "{stage}"
            );
        }
    }

    #[test]
    fn every_non_terminal_stage_can_be_cancelled() {
        for stage in Stage::ALL
            .into_iter()
            .filter(|s| !matches!(s, Done | Cancelled))
        {
            assert_eq!(find_edge(stage, Cancelled).unwrap().kind, Cancel);
        }
    }

    #[test]
    fn done_never_rolls_back() {
        assert!(find_edge(Done, Development).is_none());
    }

    #[test]
    fn names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>().unwrap(), stage);
        }
    }

    #[test]
    fn a_goal_lives_only_on_its_path_before_it() {
        assert!(goal_ahead(Done, DeployStaging));
        assert!(goal_ahead(Done, Deploy));
        assert!(goal_ahead(Deploy, DeployStaging));
        assert!(!goal_ahead(Deploy, Deploy), "reached");
        assert!(!goal_ahead(Done, Done), "reached");
        assert!(!goal_ahead(Deploy, Done), "past it");
        assert!(!goal_ahead(Done, Development), "a rollback");
        assert!(!goal_ahead(Done, Cancelled), "a cancel");
        assert!(!goal_ahead(Done, Testing), "not on the gated path yet");
        assert!(!goal_ahead(DeployStaging, Testing), "not a goal");
        assert_eq!(goals_kept_at(DeployStaging), [Some(Deploy), Some(Done)]);
        assert_eq!(goals_kept_at(Deploy), [None, Some(Done)]);
        assert_eq!(goals_kept_at(Development), [None, None]);
    }

    #[test]
    fn toward_a_goal_is_the_next_gated_forward_edge() {
        assert_eq!(
            toward(Done, DeployStaging),
            find_edge(DeployStaging, Deploy)
        );
        assert_eq!(toward(Done, Deploy), find_edge(Deploy, Done));
        assert_eq!(
            toward(Deploy, DeployStaging),
            find_edge(DeployStaging, Deploy)
        );
        assert_eq!(toward(Deploy, Deploy), None);
        assert_eq!(toward(Done, Done), None);
        assert_eq!(toward(Done, Development), None);
        for at in Stage::ALL {
            for goal in GOALS {
                if let Some(edge) = toward(goal, at) {
                    assert_eq!(edge.kind, Forward, "{edge}");
                }
            }
        }
    }
}
