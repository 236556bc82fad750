//! The shell completions in `completions/` (bash, zsh, fish, elvish, PowerShell), rendered from
//! the clap definitions by clap_complete.
//!
//! `scripts/gen-docs` writes them; tests/cli/docs.rs fails when a committed script differs from
//! `render_all()`.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::{Generator, Shell};

use crate::cli::Cli;

/// The folder the scripts are committed in, relative to the repository root.
pub const DIR: &str = "completions";

/// The shells a script is generated for.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Every script, as (path relative to the repository root, contents).
pub fn render_all() -> Vec<(PathBuf, Vec<u8>)> {
    SHELLS
        .into_iter()
        .map(|shell| {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "orch", &mut script);
            (PathBuf::from(DIR).join(shell.file_name("orch")), script)
        })
        .collect()
}
