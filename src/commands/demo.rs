//! `orch demo`: a walk through the pipeline in a temporary directory, incidents included.

use anyhow::Result;
use clap::Args;

use crate::error::Exit;
use crate::Context;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {}

pub(crate) fn run(ctx: &Context, _args: DemoArgs) -> Result<Exit> {
    let dir = crate::demo::run(ctx.ui)?;
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "outcome": "done", "dir": dir }))?;
    }
    Ok(Exit::Ok)
}
