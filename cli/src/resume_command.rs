//! The exact command that resumes an import, to print when it stops: this
//! process's own command line, with `--resume` (or, when no checkpoint was
//! kept, a `--checkpoint` to keep one next time), quoted for a POSIX shell,
//! with keys and passwords left out: each is replaced by the environment
//! variable to supply it in (`"$CUSTOMERIO_TRACK_API_KEY"`,
//! `"$REDIS_PASSWORD"`), which the shell fills in when the command is run.

use std::ffi::OsString;
use std::path::Path;

/// The variable a Redis URL's password is replaced with.
const REDIS_PASSWORD: &str = "REDIS_PASSWORD";

/// `args` (the program first) as a command that goes on from where the
/// import stopped: with `--resume` when `checkpoint` is on disk; else as it
/// was when it asks for a checkpoint (none was stored yet), or with
/// `--checkpoint` and `suggested`, so that the next run can be resumed.
pub fn resume_command(
    args: impl IntoIterator<Item = OsString>,
    checkpoint: bool,
    suggested: &Path,
) -> String {
    let mut words = Vec::new();
    let mut previous = String::new();
    let mut has_checkpoint = false;
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--resume" {
            continue;
        }
        has_checkpoint |= arg == "--checkpoint" || arg.starts_with("--checkpoint=");
        let inline = arg
            .split_once('=')
            .and_then(|(flag, value)| Some(format!("{flag}={}", secret(flag, value)?)));
        let word = secret(&previous, &arg)
            .or(inline)
            .unwrap_or_else(|| quoted(&arg));
        words.push(word);
        previous = arg;
    }
    if checkpoint {
        words.push("--resume".into());
    } else if !has_checkpoint {
        words.push("--checkpoint".into());
        words.push(quoted(&suggested.to_string_lossy()));
    }
    words.join(" ")
}

/// When `flag`'s `value` is a key, or a URL with a password in it: the
/// shell word to print instead, naming the environment variable that
/// supplies it.
fn secret(flag: &str, value: &str) -> Option<String> {
    let variable = match flag {
        "--api-key" => "CUSTOMERIO_TRACK_API_KEY",
        "--app-key" => "CUSTOMERIO_APP_API_KEY",
        "--pipelines-key" => "CUSTOMERIO_PIPELINES_API_KEY",
        "--redis-url" => return without_password(value),
        _ => return None,
    };
    Some(format!("\"${variable}\""))
}

/// A Redis URL with its password (`redis://[user]:PASSWORD@host`) replaced
/// by `"$REDIS_PASSWORD"`, when it has one.
fn without_password(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    let after = &rest[userinfo.len()..]; // from the `@` on
    Some(format!(
        "{}\"${REDIS_PASSWORD}\"{}",
        quoted(&format!("{scheme}://{user}:")),
        quoted(after)
    ))
}

/// `word` as a POSIX shell reads it back: bare when that is safe, else in
/// single quotes.
fn quoted(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str], checkpoint: bool) -> String {
        resume_command(
            args.iter().map(OsString::from),
            checkpoint,
            Path::new("in.ndjson.checkpoint"),
        )
    }

    #[test]
    fn a_kept_checkpoint_is_resumed_once_whatever_the_flags_say() {
        assert_eq!(
            command(
                &["cio-ratelimit", "import", "in.ndjson", "--checkpoint", "cp"],
                true
            ),
            "cio-ratelimit import in.ndjson --checkpoint cp --resume"
        );
        assert_eq!(
            command(
                &[
                    "cio-ratelimit",
                    "import",
                    "--resume",
                    "in",
                    "--checkpoint",
                    "cp"
                ],
                true
            ),
            "cio-ratelimit import in --checkpoint cp --resume"
        );
    }

    #[test]
    fn without_a_checkpoint_one_is_suggested() {
        assert_eq!(
            command(&["cio-ratelimit", "import", "in.ndjson"], false),
            "cio-ratelimit import in.ndjson --checkpoint in.ndjson.checkpoint"
        );
    }

    /// Issue 24: a checkpoint asked for but never stored was named in a
    /// `--resume` command; a second `--checkpoint` must not be added either.
    #[test]
    fn a_checkpoint_asked_for_but_not_stored_is_run_again_as_it_was() {
        assert_eq!(
            command(&["cio", "import", "in", "--checkpoint", "cp"], false),
            "cio import in --checkpoint cp"
        );
        assert_eq!(
            command(&["cio", "import", "in", "--checkpoint=cp"], false),
            "cio import in --checkpoint=cp"
        );
    }

    #[test]
    fn words_a_shell_would_split_or_expand_are_quoted() {
        assert_eq!(
            command(
                &[
                    "cio",
                    "import",
                    "my file.ndjson",
                    "--dead-letter",
                    "it's$HOME",
                    ""
                ],
                true
            ),
            r"cio import 'my file.ndjson' --dead-letter 'it'\''s$HOME' '' --resume"
        );
    }

    #[test]
    fn keys_and_redis_passwords_are_never_printed() {
        let text = command(
            &[
                "cio",
                "import",
                "in",
                "--api-key",
                "sekrit1",
                "--app-key=sekrit2",
                "--pipelines-key",
                "sekrit3",
                "--redis-url",
                "redis://:sekrit4@host",
            ],
            true,
        );
        assert!(!text.contains("sekrit"), "{text}");
        // Issue 24: `HIDDEN` said nothing of what to supply instead.
        assert_eq!(
            text,
            r#"cio import in --api-key "$CUSTOMERIO_TRACK_API_KEY" --app-key="$CUSTOMERIO_APP_API_KEY" --pipelines-key "$CUSTOMERIO_PIPELINES_API_KEY" --redis-url redis://:"$REDIS_PASSWORD"@host --resume"#
        );
        let user = command(
            &[
                "cio",
                "import",
                "in",
                "--redis-url",
                "redis://me:sekrit@h:6379/2",
            ],
            true,
        );
        assert_eq!(
            user,
            r#"cio import in --redis-url redis://me:"$REDIS_PASSWORD"@h:6379/2 --resume"#
        );
        let plain = command(
            &["cio", "import", "in", "--redis-url", "redis://host"],
            true,
        );
        assert!(plain.contains("redis://host"), "{plain}");
    }
}
