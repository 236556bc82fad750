//! The stage engine: one step of one task, in the contract's order of checks (`checks`), its
//! gates under the lease (`edge`), the commit (`commit`) or the routing of a failed gate
//! (`route`), for each entry point (`entry`).

mod checks;
mod commit;
mod edge;
mod entry;
mod report;
mod route;

pub(crate) use entry::{advance, advance_next, merge_gate_retest};
pub(crate) use report::{load_task, AdvanceReport, AdvanceRequest, GoalRequest};
