//! The man pages: `man/orch.1` and one page per subcommand (`man/orch-task-add.1`, …), rendered
//! from the clap definitions by clap_mangen.
//!
//! `orch.1` adds three sections generated from their single sources: EXIT STATUS (`Exit::ALL` and
//! orch exec's codes), ENVIRONMENT (`.env.example`) and STAGE TABLE (`STAGE_TRANSITIONS` with the
//! gates of each edge). `scripts/gen-docs` writes the pages; tests/cli/docs.rs fails when a
//! committed page differs from `render_all()`.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::commands::exec;
use crate::env_example::{self, EnvExample, Item};
use crate::error::Exit;
use crate::gates::edge_gates;
use crate::stages::{EdgeKind, STAGE_TRANSITIONS};

/// The folder the pages are committed in, relative to the repository root.
pub const DIR: &str = "man";

/// Every page, as (path relative to the repository root, contents), `orch.1` first.
pub fn render_all() -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![(PathBuf::from(DIR).join("orch.1"), top_page(cmd.clone()))];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_pages(sub.clone(), &mut pages);
    }
    pages
}

/// The page of `cmd` (already built, so its display name is `orch-task-add`), then its
/// subcommands' pages.
fn subcommand_pages(cmd: clap::Command, pages: &mut Vec<(PathBuf, Vec<u8>)>) {
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render(&mut page)
        .expect("rendering to memory cannot fail");
    pages.push((PathBuf::from(DIR).join(man.get_filename()), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_pages(sub.clone(), pages);
    }
}

/// clap_mangen's page of `orch`, with the extra sections before VERSION.
fn top_page(cmd: clap::Command) -> Vec<u8> {
    let mut page = Vec::new();
    Man::new(cmd)
        .render(&mut page)
        .expect("rendering to memory cannot fail");
    let page = String::from_utf8(page).expect("clap_mangen writes UTF-8");
    let mut extra = Roff::new();
    exit_status(&mut extra);
    environment(&mut extra, &env_example::parse(env_example::ENV_EXAMPLE));
    stage_table(&mut extra);
    // Every `Roff` render starts with the same apostrophe preamble; the page already has it.
    let preamble = Roff::new().render();
    let rendered = extra.render();
    let extra = rendered.strip_prefix(&preamble).unwrap_or(&rendered);
    let at = page.find(".SH VERSION\n").unwrap_or(page.len());
    format!("{}{extra}{}", &page[..at], &page[at..]).into_bytes()
}

/// A tagged paragraph: `tag` on its own line, then `body` indented.
fn tagged(roff: &mut Roff, tag: impl Into<Vec<Inline>>, body: &str) {
    roff.control("TP", []);
    roff.text(tag);
    if !body.is_empty() {
        roff.text([roman(body)]);
    }
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "The exit codes are part of the contract: CI scripts branch on them.",
    )]);
    for exit in Exit::ALL {
        tagged(roff, [bold(exit.code().to_string())], exit.meaning());
    }
    roff.control("PP", []);
    roff.text([
        bold("orch exec"),
        roman(" has the codes of "),
        bold("timeout"),
        roman("(1) instead: the command's own exit status, or"),
    ]);
    for (code, meaning) in exec::EXIT_CODES {
        tagged(roff, [bold(code.to_string())], meaning);
    }
    tagged(
        roff,
        [bold("128+"), italic("N")],
        "orch was cancelled by signal N, or the command died of a signal orch did not send",
    );
}

fn environment(roff: &mut Roff, file: &EnvExample) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(file.intro.join(" "))]);
    for section in &file.sections {
        if !section.title.is_empty() {
            roff.control("SS", [section.title.as_str()]);
        }
        for item in &section.items {
            match item {
                Item::Note(note) => {
                    roff.control("PP", []);
                    roff.text([roman(note.as_str())]);
                }
                Item::Key(key) => {
                    let default = if key.default.is_empty() {
                        "unset".to_string()
                    } else {
                        key.default.clone()
                    };
                    tagged(
                        roff,
                        [
                            bold(key.key.as_str()),
                            roman(" (default: "),
                            italic(default),
                            roman(")"),
                        ],
                        &key.comment,
                    );
                }
                Item::SetForCommands { name, description } => {
                    tagged(roff, [bold(name.as_str())], description);
                }
            }
        }
    }
}

fn stage_table(roff: &mut Roff) {
    roff.control("SH", ["STAGE TABLE"]);
    roff.text([roman(
        "Every edge a task may take (STAGE_TRANSITIONS); any other is an illegal transition \
         (exit 5). done and cancelled are terminal. HOLD is a flag on a task, not a stage: no \
         stage write lands on a held task until orch task release lifts it.",
    )]);
    for edge in STAGE_TRANSITIONS {
        let kind = match edge.kind {
            EdgeKind::Forward => "forward",
            EdgeKind::Rollback => "rollback",
            EdgeKind::Cancel => "cancel",
        };
        let gates: Vec<&str> = edge_gates(*edge).iter().map(|g| g.name()).collect();
        let body = if gates.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}; gates, in order: {}", gates.join(", "))
        };
        tagged(
            roff,
            [
                bold(edge.from.as_str()),
                roman(" \u{2192} "),
                bold(edge.to.as_str()),
            ],
            &body,
        );
    }
}
