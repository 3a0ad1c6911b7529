//! `completions` and `man`, run as processes: scripts each shell can load,
//! and a man page that documents every subcommand's flags.

mod command;

use std::process::{Command, Stdio};

use command::cio_ratelimit;

#[test]
fn completions_bash_is_a_script_bash_accepts_that_knows_every_subcommand_and_flag() {
    let outcome = cio_ratelimit(&["completions", "bash"]).run();
    outcome.assert_code(0);
    let script = &outcome.stdout;
    assert!(
        script.contains("complete -F _cio__ratelimit") && script.contains("cio-ratelimit"),
        "{script}"
    );
    for word in [
        "import",
        "identify",
        "send-email",
        "--redis-url",
        "--metrics-file",
        "--redis-wait",
    ] {
        assert!(script.contains(word), "completes {word}");
    }
    // bash -n: parses without running, so a broken script fails here. bash is
    // there wherever the tests run (.ci/run is a bash script): its absence
    // fails the test rather than skipping the check.
    let checked = Command::new("bash")
        .args(["-n", "-c", script])
        .stderr(Stdio::piped())
        .output()
        .expect("bash runs, to check the script");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn completions_cover_zsh_fish_and_powershell_and_refuse_other_shells() {
    for (shell, marker) in [
        ("zsh", "#compdef cio-ratelimit"),
        ("fish", "complete -c cio-ratelimit"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let outcome = cio_ratelimit(&["completions", shell]).run();
        outcome.assert_code(0);
        assert!(
            outcome.stdout.contains(marker),
            "{shell}: {}",
            outcome.stdout
        );
        assert!(
            outcome.stdout.contains("redis-ca"),
            "{shell} knows the flags"
        );
    }
    let outcome = cio_ratelimit(&["completions", "tcsh"]).run();
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("tcsh"), "{}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
}

#[test]
fn man_prints_a_roff_page_with_a_section_per_subcommand() {
    let outcome = cio_ratelimit(&["man"]).run();
    outcome.assert_code(0);
    let page = &outcome.stdout;
    assert!(page.contains("\n.TH cio-ratelimit 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH \"CIO-RATELIMIT IMPORT\"",
        ".SH \"CIO-RATELIMIT COMPLETIONS\"",
    ] {
        assert!(page.contains(section), "{section} in {page}");
    }
    // roff escapes the hyphens of flags.
    assert!(page.contains("\\-\\-metrics\\-file"), "{page}");
    assert!(page.contains("Exit codes"), "the exit codes are documented");
    assert!(!page.contains("\n.SH \"CIO-RATELIMIT HELP\""));
}
