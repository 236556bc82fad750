//! orch's integration tests: the real binary, a real SQLite file, real git repositories and real
//! process trees, one test binary (modules per area).

mod support;

mod exec;
mod foundation;
mod merge_gate;
