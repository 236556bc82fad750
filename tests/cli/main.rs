//! orch's integration tests: the real binary, a real SQLite file, real git repositories and real
//! process trees, one test binary (modules per area).

mod invariants;
mod support;

mod classify;
mod coverage;
#[cfg(feature = "fault-injection")]
mod crash;
mod demo;
mod docs;
mod doctor;
mod edge;
mod events;
mod exec;
mod forge_scripts;
mod foundation;
mod gates;
mod goal;
mod layers;
mod merge_gate;
mod merge_verify;
mod metrics;
mod order;
mod reap;
mod sandbox;
mod snapshots;
mod torture;
mod trust;
