//! Exports: create a people export, read its state, get its download link.
//!
//! Endpoints, from Customer.io's App API reference: `POST /v1/exports/customers`
//! with `{"filters": {...}}` (`exportPeopleData`), `GET /v1/exports/{id}`
//! (`getExport`) and `GET /v1/exports/{id}/download` (`downloadExport`: "a
//! signed link to download an export. The link expires after 15 minutes").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::client::Client;
use crate::client::event::to_object;
use crate::client::request::Method;
use crate::error::Result;
use crate::retry::policy::Call;

/// An export and its state, as the App API describes it.
///
/// Fields not named here (`deduplicate_id`, `user_id`, `user_email`, and any
/// Customer.io adds later) are kept in [`extra`](Export::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// The export's id, to read its state and download it.
    pub id: u64,
    /// `"customers"` or `"deliveries"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where it stands: `"pending"`, then `"done"`.
    #[serde(default)]
    pub status: String,
    /// Whether it failed.
    #[serde(default)]
    pub failed: bool,
    /// How many rows it holds, once known.
    #[serde(default)]
    pub total: Option<u64>,
    /// How many times it was downloaded.
    #[serde(default)]
    pub downloads: u64,
    /// What it exports, in Customer.io's words.
    #[serde(default)]
    pub description: String,
    /// When it was created, in Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    /// When it last changed, in Unix seconds.
    #[serde(default)]
    pub updated_at: i64,
    /// Any other field of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Export {
    /// Whether the export finished and can be downloaded.
    pub fn is_done(&self) -> bool {
        self.status == "done" && !self.failed
    }
}

#[derive(Deserialize)]
struct ExportAnswer {
    export: Export,
}

impl Client {
    /// Starts an export of the people `filters` select
    /// (`POST /v1/exports/customers`), on the App limiter. `filters` is
    /// Customer.io's audience filter, e.g. `{"segment": {"id": 7}}` or
    /// `{"and": [...]}`. Repeated after a 5xx or a timeout like a read: a
    /// second export of the same people is harmless.
    ///
    /// ```no_run
    /// use cio_ratelimit::Client;
    /// use serde_json::json;
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// let export = client.create_people_export(json!({"segment": {"id": 7}}))?;
    /// if client.export(export.id)?.is_done() {
    ///     println!("{}", client.export_download_url(export.id)?);
    /// }
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if `filters` is not a JSON
    /// object; [`Error::MissingCredential`](crate::Error::MissingCredential)
    /// without an App API key; otherwise what the server answered after
    /// retries.
    #[doc(alias = "createCustomersExport")]
    pub fn create_people_export(&self, filters: impl Serialize) -> Result<Export> {
        let filters = to_object(filters, "export filters")?;
        let body = serde_json::json!({ "filters": filters });
        let answer: ExportAnswer = self.app_json(
            Call::safe("create_people_export"),
            Method::Post,
            "/v1/exports/customers".into(),
            Some(&body),
        )?;
        Ok(answer.export)
    }

    /// An export's state (`GET /v1/exports/{id}`), on the App limiter.
    ///
    /// # Errors
    ///
    /// [`Error::Status`](crate::Error::Status) with status 404 for an
    /// unknown export; otherwise as
    /// [`create_people_export`](Client::create_people_export).
    #[doc(alias = "getExport")]
    pub fn export(&self, export_id: u64) -> Result<Export> {
        let path = format!("/v1/exports/{export_id}");
        Ok(self.read::<ExportAnswer>("export", path)?.export)
    }

    /// A signed link to download a finished export
    /// (`GET /v1/exports/{id}/download`), valid for 15 minutes.
    ///
    /// # Errors
    ///
    /// As [`export`](Client::export).
    #[doc(alias = "downloadExport")]
    pub fn export_download_url(&self, export_id: u64) -> Result<String> {
        #[derive(Deserialize)]
        struct Answer {
            url: String,
        }
        let path = format!("/v1/exports/{export_id}/download");
        Ok(self.read::<Answer>("export_download_url", path)?.url)
    }
}
