//! `mptcpify __generate-docs DIR`: the man pages and shell completions of
//! the release bundle, generated from the clap definitions (`cli`), so they
//! never drift from `--help`. Hidden: `cargo xtask dist` runs it.

use std::path::Path;

use clap::CommandFactory;

/// The hidden argument that asks for the documents.
pub const COMMAND: &str = "__generate-docs";

/// Writes `man/mptcpify.1`, `man/mptcpify-SUBCOMMAND.1` and
/// `completions/{mptcpify.bash,_mptcpify,mptcpify.fish}` under `dir`.
pub fn generate(dir: &Path) -> std::io::Result<()> {
    let command = crate::cli::Cli::command();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    write_man(&command, &man.join("mptcpify.1"))?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("mptcpify-{}", sub.get_name());
        // clap keeps names as &'static str (without its `string` feature);
        // this one-shot generator may leak a few bytes.
        let sub = sub.clone().name(name.clone().leak() as &str);
        write_man(&sub, &man.join(format!("{name}.1")))?;
    }
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut command.clone(), "mptcpify", &completions)?;
    }
    Ok(())
}

fn write_man(command: &clap::Command, path: &Path) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(path, page)
}
