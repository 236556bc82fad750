//! A gated step: the edge's gates under the task's lease, then the commit or the routing.

use anyhow::Result;

use super::commit::commit_transition;
use super::report::{lease_lost, AdvanceReport, AdvanceRequest};
use super::route::{self, Failed};
use crate::config::Config;
use crate::error::{failure, Exit};
use crate::gates::{self, edge_gates, GateCx, GateKind, GateResult, Verdict};
use crate::host;
use crate::lease::HeldLease;
use crate::owner::Claimant;
use crate::routing::BudgetKey;
use crate::stages::Edge;
use crate::store::{RepoRow, Store, Task};
use crate::ui::Ui;

/// One step of one task: what was asked, the task as its checks saw it, the edge, and who acts.
pub(crate) struct Step<'a> {
    pub req: &'a AdvanceRequest,
    pub snap: Task,
    pub edge: Edge,
    pub me: Claimant,
}

/// What a gated run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EdgePurpose {
    /// `orch advance`: gates, then the CAS to the edge's target stage.
    Transition,
    /// `orch merge-gate retest`: the merge sub-gate alone; its passing verdict is stored.
    MergeGateOnly,
}

/// Runs the edge's gates under `lease`, then commits or routes; always releases the lease.
pub(crate) fn run_edge(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    step: Step,
    lease: HeldLease,
    purpose: EdgePurpose,
) -> Result<AdvanceReport> {
    let lease_for_release = lease.clone();
    let result = match repo_config(store, config, &step.snap) {
        Ok((repo, config)) => run_edge_held(store, &config, ui, step, repo, lease, purpose),
        Err(err) => Err(err),
    };
    // Every path gives the lease up (the commit and routing paths already did, in their
    // transactions; this is then a no-op delete).
    let _ = store.write(|db| lease_for_release.release_in(db));
    result
}

/// The task's registered repository and the configuration its gates run with: the repository's
/// own settings over the environment.
fn repo_config(store: &Store, config: &Config, task: &Task) -> Result<(RepoRow, Config)> {
    let db = store.read();
    let Some(repo) = db.repo(&task.repo)? else {
        return Err(failure(
            Exit::Usage,
            format!(
                "task `{}`: its repo `{}` is not registered, so it cannot be gated (hint: `orch repo add {} --url URL`)",
                task.id, task.repo, task.repo
            ),
        ));
    };
    let settings = db.repo_settings(&repo.name)?;
    Ok((repo, config.for_repo(&settings)))
}

fn run_edge_held(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    step: Step,
    repo: RepoRow,
    lease: HeldLease,
    purpose: EdgePurpose,
) -> Result<AdvanceReport> {
    let Step {
        req,
        snap,
        edge,
        me,
    } = step;
    let gate_list: Vec<GateKind> = match purpose {
        EdgePurpose::Transition => edge_gates(edge).to_vec(),
        EdgePurpose::MergeGateOnly => vec![GateKind::Merge],
    };
    let carried = store.read().requeue(&snap.id)?.and_then(|r| {
        let published = r.published_tip.clone();
        r.is_of(edge)
            .then_some(())
            .and(r.budget_tip.map(|tip| BudgetKey { tip, published }))
    });
    let mut cx = GateCx {
        store,
        config,
        ui,
        task: snap.clone(),
        repo,
        lease,
        me: me.clone(),
        edge,
        base_tip: None,
        head: None,
        retested: None,
        carried,
        published: None,
    };
    let mut results = Vec::new();
    // Problems no retry fixes are found before anything is spent: the first gate reports them.
    let mut preflight = gates::preflight(&gate_list, &cx);
    for gate in gate_list {
        let mut result = match (preflight.take(), crate::cancel::requested()) {
            (_, Some(signal)) => GateResult::new(gate, Verdict::Cancelled { signal }),
            (Some(problem), None) => problem,
            (None, None) => gates::run(gate, &mut cx),
        };
        if let Some(signal) = crate::cancel::requested() {
            // Whatever the gate concluded while orch was being stopped: nothing is routed.
            result = GateResult::new(gate, Verdict::Cancelled { signal });
        }
        if result.verdict.is_pass() {
            if !gates::record_pass(&mut cx, &result)? {
                return Err(lease_lost(&snap.id));
            }
            ui.note(format!(
                "gate {}: {} — {}{}",
                gate.name(),
                result.outcome,
                result.verdict.detail(),
                route::run_ref(result.run_id)
            ));
            if let Some(head) = &result.head {
                cx.head = Some(head.clone());
            }
            if gate == GateKind::Merge {
                cx.retested = result.report.clone().map(|report| gates::Retested {
                    run_id: result.run_id,
                    report,
                });
            }
            results.push(result);
            continue;
        }
        if result.verdict == Verdict::LeaseLost {
            return Err(lease_lost(&snap.id));
        }
        let budget_key = cx.budget_key();
        let lease = cx.lease.clone();
        results.push(result);
        let failed = Failed {
            req,
            snap: &snap,
            edge,
            lease: &lease,
            budget_key: &budget_key,
            results,
        };
        return route::apply(cx.store, config, failed);
    }
    let lease = cx.lease.clone();
    let step = Step {
        req,
        snap,
        edge,
        me,
    };
    match purpose {
        EdgePurpose::Transition => {
            commit_transition(cx.store, config, ui, &step, Some(&lease), results)
        }
        EdgePurpose::MergeGateOnly => merge_gate_passed(cx.store, &step, &lease, results),
    }
}

/// The merge sub-gate passed on its own (`orch merge-gate retest`): its verdict is stored; the
/// pass is an outcome that wrote something, so the event id is recorded with it and a
/// re-delivery reports this outcome instead of re-running the gate.
fn merge_gate_passed(
    store: &mut Store,
    step: &Step,
    lease: &HeldLease,
    results: Vec<GateResult>,
) -> Result<AdvanceReport> {
    let snap = &step.snap;
    let mut report = AdvanceReport::new(
        snap,
        "passed",
        Exit::Ok,
        format!(
            "{}: merge gate passed; {} may now advance to {}",
            snap.id, snap.stage, step.edge.to
        ),
    );
    report.lease_token = lease.cas_token();
    report.guarded = !lease.unguarded;
    report.gates = results;
    if let Some(event_id) = &step.req.event_id {
        let value = serde_json::to_value(&report)?;
        store.write(|db| {
            if db.event(&snap.id, event_id)?.is_none() {
                db.insert_event(
                    event_id,
                    &snap.id,
                    "merge-gate retest",
                    0,
                    &value,
                    host::wall_ms(),
                )?;
            }
            Ok(())
        })?;
    }
    Ok(report)
}
