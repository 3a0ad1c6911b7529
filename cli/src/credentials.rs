//! Which workspace a command talks to, with which keys, and how: from flags,
//! key files and the environment to a [`ClientBuilder`].
//!
//! A flag wins over its environment variable; `--api-key` and
//! `--api-key-file` exclude each other. Keys are never required on the
//! command line (where `ps` shows them) and never printed.

use std::io::Read;
use std::path::Path;

use cio_ratelimit::{Client, ClientBuilder, RetryPolicy};

use crate::args::Global;
use crate::error::{Error, Missing};
use crate::key::Key;

/// The environment variable holding the Track API site id.
pub const SITE_ID_ENV: &str = "CUSTOMERIO_SITE_ID";
/// The environment variable holding the Track API key.
pub const API_KEY_ENV: &str = "CUSTOMERIO_TRACK_API_KEY";
/// The environment variable holding the App API key.
pub const APP_KEY_ENV: &str = "CUSTOMERIO_APP_API_KEY";
/// The environment variable holding the Pipelines API key.
pub const PIPELINES_KEY_ENV: &str = "CUSTOMERIO_PIPELINES_API_KEY";

/// The most bytes a key file may hold: a key is a few dozen bytes, so a
/// larger file is the wrong file, and is not read into memory or sent.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Which API a command calls, and so which credentials it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The Track API: the site id and the Track API key.
    Track,
    /// The App API: the App API key.
    App,
    /// The Pipelines API: the Pipelines API key.
    Pipelines,
}

/// The credentials a command runs with.
#[derive(Debug, Clone)]
pub struct Credentials {
    site_id: Option<String>,
    api_key: Option<Key>,
    app_key: Option<Key>,
    pipelines_key: Option<Key>,
}

impl Credentials {
    /// The site id, when the command has Track credentials: the workspace,
    /// e.g. in a shared rate limit's key.
    pub fn site_id(&self) -> Option<&str> {
        self.site_id.as_deref()
    }

    /// The Track API's Basic credentials, `(site_id, api_key)`: what a
    /// relay's callers must send.
    pub fn track_basic(&self) -> Option<(&str, &str)> {
        Some((self.site_id.as_deref()?, self.api_key.as_ref()?.expose()))
    }

    /// The Pipelines API key, if there is one: what a relay's Pipelines
    /// callers must send as their Basic user name.
    pub fn pipelines_basic(&self) -> Option<&str> {
        self.pipelines_key.as_ref().map(Key::expose)
    }

    /// The credentials every `cio-emulator` accepts unless told otherwise.
    pub fn emulator() -> Credentials {
        Credentials {
            site_id: Some(cio_emulator::DEFAULT_SITE_ID.into()),
            api_key: Some(Key::from_text(cio_emulator::DEFAULT_API_KEY)),
            app_key: Some(Key::from_text(cio_emulator::DEFAULT_APP_KEY)),
            pipelines_key: Some(Key::from_text(cio_emulator::DEFAULT_PIPELINES_KEY)),
        }
    }

    /// Placeholders for a dry run, which sends nothing: it needs no
    /// credentials, and must not ask for any.
    pub fn dry_run() -> Credentials {
        Credentials {
            site_id: Some("dry-run".into()),
            api_key: Some(Key::from_text("dry-run")),
            app_key: None,
            pipelines_key: Some(Key::from_text("dry-run")),
        }
    }

    /// The credentials `global` and the process's environment give, checked
    /// to include what a call to `api` needs.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] naming each missing one and where to set
    /// it; [`Error::KeyFile`] or [`Error::EmptyKeyFile`] for a key file.
    pub fn from_args(global: &Global, api: Api) -> Result<Credentials, Error> {
        Credentials::resolve(global, api, |name| std::env::var(name).ok())
    }

    fn resolve(
        global: &Global,
        api: Api,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, Error> {
        // An empty variable counts as unset, as `VAR= cmd` means in a shell.
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let site_id = global.site_id.clone().or_else(|| env(SITE_ID_ENV));
        let api_key = key(
            global.api_key.as_ref(),
            "--api-key-file",
            global.api_key_file.as_deref(),
            || env(API_KEY_ENV),
        )?;
        let app_key = key(
            global.app_key.as_ref(),
            "--app-key-file",
            global.app_key_file.as_deref(),
            || env(APP_KEY_ENV),
        )?;
        let pipelines_key = key(
            global.pipelines_key.as_ref(),
            "--pipelines-key-file",
            global.pipelines_key_file.as_deref(),
            || env(PIPELINES_KEY_ENV),
        )?;
        let missing: Vec<Missing> = match api {
            Api::Track => [
                (site_id.is_none(), Missing::SiteId),
                (api_key.is_none(), Missing::ApiKey),
            ]
            .into_iter()
            .filter_map(|(absent, missing)| absent.then_some(missing))
            .collect(),
            Api::App => app_key
                .is_none()
                .then_some(Missing::AppKey)
                .into_iter()
                .collect(),
            Api::Pipelines => pipelines_key
                .is_none()
                .then_some(Missing::PipelinesKey)
                .into_iter()
                .collect(),
        };
        if !missing.is_empty() {
            return Err(Error::MissingCredentials(missing));
        }
        Ok(Credentials {
            site_id,
            api_key,
            app_key,
            pipelines_key,
        })
    }

    /// A client builder with these credentials and every other setting of
    /// `global`: region, base URLs, timeout and retries.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] if the retry policy cannot be built.
    pub fn client_builder(self, global: &Global) -> Result<ClientBuilder, Error> {
        let mut builder = Client::builder_without_credentials().region(global.region.into());
        if let (Some(site_id), Some(api_key)) = (&self.site_id, &self.api_key) {
            builder = builder.track_credentials(site_id, api_key.expose());
        }
        if let Some(app_key) = &self.app_key {
            builder = builder.app_key(app_key.expose());
        }
        if let Some(url) = &global.track_url {
            builder = builder.track_url(url);
        }
        if let Some(url) = &global.app_url {
            builder = builder.app_url(url);
        }
        if let Some(pipelines_key) = &self.pipelines_key {
            builder = builder.pipelines_key(pipelines_key.expose());
        }
        if let Some(url) = &global.pipelines_url {
            builder = builder.pipelines_url(url);
        }
        if let Some(timeout) = global.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(max_retries) = global.max_retries {
            builder =
                builder.retry_policy(RetryPolicy::builder().max_retries(max_retries).build()?);
        }
        Ok(builder)
    }
}

/// A client builder for a call to `api`, from `global` and the environment.
///
/// # Errors
///
/// As [`Credentials::from_args`] and [`Credentials::client_builder`].
pub fn client_builder(global: &Global, api: Api) -> Result<ClientBuilder, Error> {
    Credentials::from_args(global, api)?.client_builder(global)
}

/// A key from its flag, else its file, else the environment.
fn key(
    flag: Option<&Key>,
    file_flag: &'static str,
    file: Option<&Path>,
    env: impl FnOnce() -> Option<String>,
) -> Result<Option<Key>, Error> {
    if let Some(key) = flag {
        return Ok(Some(key.clone()));
    }
    let Some(path) = file else {
        return Ok(env().map(Key::from_text));
    };
    let key_file_error = |source| Error::KeyFile {
        flag: file_flag,
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(key_file_error)?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(key_file_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_KEY_FILE_BYTES} bytes: a key file holds only the key"),
        )));
    }
    match text.trim() {
        "" => Err(Error::EmptyKeyFile {
            flag: file_flag,
            path: path.to_owned(),
        }),
        key => Ok(Some(Key::from_text(key))),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Args, Command};

    fn global(args: &[&str]) -> Global {
        let args =
            Args::try_parse_from(["cio-ratelimit", "delete", "1"].iter().chain(args)).unwrap();
        let Command::Call(call) = args.command else {
            unreachable!()
        };
        call.global().clone()
    }

    fn env(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars = vars.to_vec();
        move |name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn missing(result: Result<Credentials, Error>) -> Vec<Missing> {
        match result {
            Err(Error::MissingCredentials(missing)) => missing,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_environment_supplies_what_flags_do_not() {
        let vars = env(&[(SITE_ID_ENV, "env-site"), (API_KEY_ENV, "env-key")]);
        let credentials = Credentials::resolve(&global(&[]), Api::Track, &vars).unwrap();
        assert_eq!(credentials.site_id(), Some("env-site"));
        assert_eq!(credentials.api_key.as_ref().unwrap().expose(), "env-key");
        let flags = global(&["--site-id", "flag-site", "--api-key", "flag-key"]);
        let credentials = Credentials::resolve(&flags, Api::Track, &vars).unwrap();
        assert_eq!(credentials.site_id(), Some("flag-site"));
        assert_eq!(credentials.api_key.as_ref().unwrap().expose(), "flag-key");
    }

    #[test]
    fn each_missing_credential_is_named() {
        let none = env(&[]);
        assert_eq!(
            missing(Credentials::resolve(&global(&[]), Api::Track, &none)),
            [Missing::SiteId, Missing::ApiKey]
        );
        assert_eq!(
            missing(Credentials::resolve(
                &global(&["--site-id", "s"]),
                Api::Track,
                &none
            )),
            [Missing::ApiKey]
        );
        assert_eq!(
            missing(Credentials::resolve(&global(&[]), Api::App, &none)),
            [Missing::AppKey]
        );
        let blank = env(&[(SITE_ID_ENV, " "), (API_KEY_ENV, "")]);
        assert_eq!(
            missing(Credentials::resolve(&global(&[]), Api::Track, &blank)),
            [Missing::SiteId, Missing::ApiKey]
        );
    }

    #[test]
    fn pipelines_calls_need_only_the_pipelines_key() {
        assert_eq!(
            missing(Credentials::resolve(&global(&[]), Api::Pipelines, env(&[]))),
            [Missing::PipelinesKey]
        );
        let vars = env(&[(PIPELINES_KEY_ENV, "wk")]);
        let credentials = Credentials::resolve(&global(&[]), Api::Pipelines, &vars).unwrap();
        assert_eq!(credentials.pipelines_key.as_ref().unwrap().expose(), "wk");
        let flag = global(&["--pipelines-key", "flag-wk"]);
        let credentials = Credentials::resolve(&flag, Api::Pipelines, &vars).unwrap();
        assert_eq!(credentials.pipelines_key.unwrap().expose(), "flag-wk");
    }

    #[test]
    fn key_files_over_4_kb_are_refused_unread() {
        let dir =
            std::env::temp_dir().join(format!("cio-ratelimit-cli-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "k".repeat(5000)).unwrap();
        let flags = global(&["--pipelines-key-file", file.to_str().unwrap()]);
        let error = Credentials::resolve(&flags, Api::Pipelines, env(&[])).unwrap_err();
        assert!(
            matches!(&error, Error::KeyFile { flag: "--pipelines-key-file", source, .. }
                if source.to_string().contains("4096")),
            "{error:?}"
        );
        std::fs::write(&file, format!("{}\n", "k".repeat(4000))).unwrap();
        assert!(Credentials::resolve(&flags, Api::Pipelines, env(&[])).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn app_calls_need_only_the_app_key() {
        let vars = env(&[(APP_KEY_ENV, "app")]);
        let credentials = Credentials::resolve(&global(&[]), Api::App, &vars).unwrap();
        assert_eq!(credentials.app_key.unwrap().expose(), "app");
    }

    #[test]
    fn key_files_are_trimmed_and_win_over_the_environment() {
        let dir = std::env::temp_dir().join(format!("cio-ratelimit-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "  file-key\n").unwrap();
        let path = file.to_str().unwrap();
        let vars = env(&[(SITE_ID_ENV, "s"), (API_KEY_ENV, "env-key")]);
        let flags = global(&["--api-key-file", path]);
        let credentials = Credentials::resolve(&flags, Api::Track, &vars).unwrap();
        assert_eq!(credentials.api_key.as_ref().unwrap().expose(), "file-key");

        std::fs::write(&file, "\n \n").unwrap();
        assert!(matches!(
            Credentials::resolve(&flags, Api::Track, &vars),
            Err(Error::EmptyKeyFile {
                flag: "--api-key-file",
                ..
            })
        ));
        std::fs::remove_file(&file).unwrap();
        let error = Credentials::resolve(&flags, Api::Track, &vars).unwrap_err();
        assert!(
            matches!(
                error,
                Error::KeyFile {
                    flag: "--api-key-file",
                    ..
                }
            ),
            "{error:?}"
        );
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn settings_reach_the_client() {
        let flags = global(&[
            "--region",
            "eu",
            "--app-url",
            "http://127.0.0.1:9",
            "--timeout",
            "1.5",
            "--max-retries",
            "1",
        ]);
        let client = Credentials::emulator()
            .client_builder(&flags)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(client.region(), cio_ratelimit::Region::Eu);
        assert_eq!(client.track_url(), "https://track-eu.customer.io");
        assert_eq!(client.app_url(), "http://127.0.0.1:9");
        assert_eq!(client.retry_policy().max_retries(), 1);
    }

    #[test]
    fn debug_shows_no_key() {
        let text = format!("{:?}", Credentials::emulator());
        assert!(!text.contains(cio_emulator::DEFAULT_API_KEY), "{text}");
        assert!(!text.contains(cio_emulator::DEFAULT_APP_KEY), "{text}");
        assert!(
            !text.contains(cio_emulator::DEFAULT_PIPELINES_KEY),
            "{text}"
        );
    }
}
