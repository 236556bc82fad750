//! `orch doctor`: the stage table, the gates, the effective config with each value's source, and
//! the invariants. Exits 2 when something is wrong, with a fix for each problem.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::config::Entry;
use crate::error::Exit;
use crate::gates::edge_gates;
use crate::stages::{Edge, STAGE_TRANSITIONS};
use crate::store::{Store, SCHEMA_VERSION};
use crate::Context;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

#[derive(Serialize)]
struct EdgeView {
    #[serde(flatten)]
    edge: Edge,
    gates: Vec<&'static str>,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    stage_transitions: Vec<EdgeView>,
    config: &'a [Entry],
    problems: Vec<String>,
    database: DatabaseCheck,
}

#[derive(Serialize)]
struct DatabaseCheck {
    path: String,
    state: String,
    schema_version: i64,
}

pub fn run(ctx: &Context, _args: DoctorArgs) -> Result<Exit> {
    let config = &ctx.config;
    let mut problems: Vec<String> = config
        .problems
        .iter()
        .map(|p| format!("{p} (fix: correct or unset {})", p.key))
        .collect();
    problems.extend(config.invariant_violations());
    let database = check_database(ctx, &mut problems);
    let report = Report {
        ok: problems.is_empty(),
        stage_transitions: STAGE_TRANSITIONS
            .iter()
            .map(|&edge| EdgeView {
                edge,
                gates: edge_gates(edge).iter().map(|g| g.name()).collect(),
            })
            .collect(),
        config: &config.entries,
        problems,
        database,
    };
    if ctx.ui.json {
        ctx.ui.json(&report)?;
    } else {
        print_text(ctx, &report);
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Usage })
}

fn check_database(ctx: &Context, problems: &mut Vec<String>) -> DatabaseCheck {
    let path = ctx.config.db_path.display().to_string();
    let state = if !ctx.config.db_path.exists() {
        "not created yet (the first writing command creates it)".to_string()
    } else {
        match Store::open_read_only(&ctx.config.db_path).and_then(|s| s.quick_check()) {
            Ok(lines) if lines == ["ok"] => "ok".to_string(),
            Ok(lines) => {
                problems.push(format!(
                    "database `{path}` fails quick_check: {} (fix: restore it from a backup)",
                    lines.join("; ")
                ));
                "corrupt".to_string()
            }
            Err(err) => {
                problems.push(format!("{err}"));
                "unusable".to_string()
            }
        }
    };
    DatabaseCheck {
        path,
        state,
        schema_version: SCHEMA_VERSION,
    }
}

fn print_text(ctx: &Context, report: &Report) {
    let ui = &ctx.ui;
    ui.line("stage table (STAGE_TRANSITIONS)");
    for e in &report.stage_transitions {
        ui.line(format!(
            "  {:<14} → {:<14} {:<9} gates: {}",
            e.edge.from.as_str(),
            e.edge.to.as_str(),
            format!("{:?}", e.edge.kind).to_lowercase(),
            if e.gates.is_empty() {
                "none".to_string()
            } else {
                e.gates.join(", ")
            }
        ));
    }
    ui.line("config");
    for entry in report.config {
        ui.line(format!(
            "  {:<44} {:<24} ({})",
            entry.key, entry.value, entry.source
        ));
    }
    ui.line(format!(
        "database  {}  {}  (schema v{})",
        report.database.path, report.database.state, report.database.schema_version
    ));
    if report.problems.is_empty() {
        ui.line("no problems found");
    } else {
        ui.line(format!("{} problem(s):", report.problems.len()));
        for p in &report.problems {
            ui.line(format!("  - {p}"));
        }
    }
}
