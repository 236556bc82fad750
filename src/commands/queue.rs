//! `orch queue`: the read-only operator view. Never writes, never creates a file, and works on a
//! database in a read-only location.

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::error::Exit;
use crate::store::Store;
use crate::{metrics, queue, Context};

#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Short aligned text.
    Text,
    /// One JSON document (the same as `--json`).
    Json,
    /// The Prometheus text format, for node_exporter's textfile collector.
    Prometheus,
    /// OpenMetrics text, ending in `# EOF`.
    Openmetrics,
}

pub(crate) fn run(ctx: &Context, args: QueueArgs) -> Result<Exit> {
    let view = Store::read_only(&ctx.config.db_path, |store| {
        store.snapshot(|db| queue::build(db, &ctx.config))
    })?;
    let format = if ctx.ui.json {
        Format::Json
    } else {
        args.format
    };
    match format {
        Format::Json => ctx.ui.json(&view)?,
        Format::Text => {
            for line in queue::render_text(&view) {
                ctx.ui.line(line);
            }
        }
        Format::Prometheus | Format::Openmetrics => {
            let exposition = if format == Format::Prometheus {
                metrics::Exposition::Prometheus
            } else {
                metrics::Exposition::OpenMetrics
            };
            let text = metrics::render(&metrics::families(&view), exposition);
            ctx.ui.line(text.trim_end_matches('\n'));
        }
    }
    Ok(Exit::Ok)
}
