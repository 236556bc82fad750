//! The process-group runner (being built): every process orch starts goes through it.
