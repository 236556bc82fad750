//! The gate registry `QG_CHECKS`: which gates guard which edge, in the order they run.
//!
//! Gates sit on the side-effectful edges and run in registry order between the lease and the CAS.
//! A gate never panics and never raises past `run`: whatever goes wrong becomes a `Verdict`.

use super::{checks, merge, merge_verify, GateCx, GateResult};
use crate::outcome::{GateKind, InfraKind, Verdict};
use crate::stages::{Edge, Stage};

/// `QG_CHECKS`: the gates of each guarded edge, in the order they run.
pub(crate) const QG_CHECKS: &[(Stage, Stage, &[GateKind])] = &[
    (
        Stage::DeployStaging,
        Stage::Deploy,
        &[
            GateKind::Security,
            GateKind::Merge,
            GateKind::Coverage,
            GateKind::ImageFreshness,
        ],
    ),
    (Stage::Deploy, Stage::Done, &[GateKind::MergeVerify]),
];

/// The gates guarding an edge, in order; empty for an unguarded edge.
pub(crate) fn edge_gates(edge: Edge) -> &'static [GateKind] {
    QG_CHECKS
        .iter()
        .find(|(from, to, _)| *from == edge.from && *to == edge.to)
        .map_or(&[], |(_, _, gates)| gates)
}

/// Runs one gate. Never fails: an error becomes an `other` infra verdict.
pub(crate) fn run(gate: GateKind, cx: &mut GateCx) -> GateResult {
    let result = match gate {
        GateKind::Security => checks::security(cx),
        GateKind::Merge => merge::retest(cx),
        GateKind::Coverage => checks::coverage(cx),
        GateKind::ImageFreshness => checks::image_freshness(cx),
        GateKind::MergeVerify => merge_verify::verify(cx),
    };
    result.unwrap_or_else(|err| {
        GateResult::new(
            gate,
            Verdict::Infra {
                kind: InfraKind::Other,
                reason: format!("{err:#}"),
            },
        )
    })
}
