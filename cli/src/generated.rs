//! `completions SHELL` and `man`: shell completion scripts and the man page,
//! generated from the same clap definition the parser uses, so that they
//! never drift from the flags.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::{Args, ShellArg};

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: ShellArg, out: &mut impl Write) -> io::Result<()> {
    let shell = match shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
        ShellArg::Powershell => Shell::PowerShell,
    };
    let mut command = Args::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    out.write_all(&script)
}

/// Writes the man page, in roff, to `out`: the command, then a section per
/// subcommand with its synopsis and its own flags.
pub fn man(out: &mut impl Write) -> io::Result<()> {
    let mut command = Args::command();
    command.build();
    clap_mangen::Man::new(command.clone()).render(out)?;
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        let page = clap_mangen::Man::new(sub.clone());
        let mut synopsis = Vec::new();
        page.render_synopsis_section(&mut synopsis)?;
        let mut options = Vec::new();
        page.render_options_section(&mut options)?;
        // One section per subcommand, its options under it.
        let title = format!(".SH \"{} {}\"", command.get_name(), sub.get_name()).to_uppercase();
        let synopsis = String::from_utf8_lossy(&synopsis).replacen(".SH SYNOPSIS", &title, 1);
        let options = String::from_utf8_lossy(&options).replace("\n.SH ", "\n.SS ");
        out.write_all(synopsis.as_bytes())?;
        out.write_all(options.as_bytes())?;
    }
    Ok(())
}
