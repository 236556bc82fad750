//! Writes every generated file of the repository: the man pages (`man/`), the shell completions
//! (`completions/`) and the README's environment table. Run it through `scripts/gen-docs`.
//!
//! Files in `man/` and `completions/` that the code no longer generates are removed, so a
//! dropped subcommand leaves no stale page behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<(PathBuf, Vec<u8>)> = orch::manpage::render_all()
        .into_iter()
        .chain(orch::completions::render_all())
        .collect();
    let wanted: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    for dir in [orch::manpage::DIR, orch::completions::DIR] {
        std::fs::create_dir_all(root.join(dir))?;
        for entry in std::fs::read_dir(root.join(dir))? {
            let path = Path::new(dir).join(entry?.file_name());
            if !wanted.contains(path.as_path()) {
                std::fs::remove_file(root.join(&path))?;
                println!("removed {}", path.display());
            }
        }
    }
    for (path, contents) in &files {
        let target = root.join(path);
        if std::fs::read(&target).ok().as_deref() != Some(contents.as_slice()) {
            std::fs::write(&target, contents)?;
            println!("wrote {}", path.display());
        }
    }
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    let table =
        orch::env_example::readme_table(&orch::env_example::parse(orch::env_example::ENV_EXAMPLE));
    let spliced = orch::env_example::splice_readme(&readme, &table).ok_or_else(|| {
        anyhow::anyhow!(
            "README.md has no environment table markers (`{}` … `{}`)",
            orch::env_example::README_BEGIN,
            orch::env_example::README_END
        )
    })?;
    if spliced != readme {
        std::fs::write(&readme_path, spliced)?;
        println!("wrote README.md (environment table)");
    }
    Ok(())
}
