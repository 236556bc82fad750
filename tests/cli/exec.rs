//! `orch exec` and the process-group runner (being built).
