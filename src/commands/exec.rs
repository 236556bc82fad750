//! `orch exec`: the process-group runner on its own (being built).

use anyhow::Result;

use crate::Context;

/// Run a command in its own process group with a deadline.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(_ctx: &Context, _args: ExecArgs) -> Result<i32> {
    anyhow::bail!("orch exec is not built yet")
}
