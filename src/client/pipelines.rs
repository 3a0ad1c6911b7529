//! The Pipelines API (Customer.io Data Pipelines): single calls to
//! `/v1/{type}` and batches to `/v1/batch`, where a strict-mode 400 is
//! narrowed down to the calls at fault.

use crate::client::batch::BatchResponse;
use crate::client::batch_body::BatchBody;
use crate::client::client::Client;
use crate::client::pipelines_batch::{PipelinesBatch, PipelinesBatchPacker};
use crate::client::pipelines_call::PipelinesCall;
use crate::client::request::{Method, Request};
use crate::error::ItemError;
use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::retry::policy::Call;

impl Client {
    /// Sends one Pipelines call to its endpoint (`POST /v1/identify`,
    /// `/v1/track`, ...), with `X-Strict-Mode: 1` so that a call Customer.io
    /// finds invalid is refused with a 400 instead of accepted and dropped.
    /// Retried like any safe call: its `messageId` makes a repeat count once.
    ///
    /// ```no_run
    /// use cio_ratelimit::{Client, PipelinesCall};
    /// use serde_json::json;
    ///
    /// let client = Client::builder_without_credentials().pipelines_key("source-write-key").build()?;
    /// client.send_pipelines(&PipelinesCall::identify("42").traits(json!({"plan": "pro"}))?)?;
    /// client.send_pipelines(&PipelinesCall::track("42", "upgraded"))?;
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] without sending for a malformed call or one over
    /// 32 KB; [`Error::MissingCredential`] without a Pipelines key;
    /// otherwise what the server answered after retries (a strict-mode
    /// rejection is [`Error::Status`] with status 400).
    pub fn send_pipelines(&self, call: &PipelinesCall) -> Result<()> {
        let body = call.checked_bytes()?.into_owned();
        self.post_pipelines(call.call_type().path(), body)
    }

    /// Sends one packed batch (`POST /v1/batch`), strict mode on.
    ///
    /// When Customer.io refuses the batch with a 400 (or a 413), the batch is
    /// split in halves and each half sent again, down to the single calls at
    /// fault: those come back as data, in [`BatchResponse::rejected`] with
    /// their index in the batch, and every other call is delivered. The
    /// halves go one after the other, so the delivered calls arrive in the
    /// batch's order. A batch with k bad calls among n costs about
    /// 2·k·log2(n) extra requests, each through the limiter.
    ///
    /// # Errors
    ///
    /// What the server answered after retries when a request failed for
    /// another reason (401, 429 or 5xx after retries, a timeout, ...). Some
    /// halves may have been delivered by then; sending the whole batch again
    /// is safe, since Customer.io counts each `messageId` once.
    pub fn send_pipelines_batch(&self, batch: &PipelinesBatch) -> Result<BatchResponse> {
        let mut response = BatchResponse::default();
        self.deliver(&batch.body, 0, &mut response.rejected)?;
        Ok(response)
    }

    /// Packs any number of calls into batches under Customer.io's size limits
    /// and sends them in order, as [`send_pipelines_batch`](Client::send_pipelines_batch)
    /// does. Rejected calls are reported with their index in `calls`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] before anything is sent if a call is malformed or
    /// over 32 KB; otherwise the first batch that failed as a whole (after
    /// retries): the batches before it were delivered, the ones after it not
    /// sent.
    pub fn send_pipelines_calls<'a>(
        &self,
        calls: impl IntoIterator<Item = &'a PipelinesCall>,
    ) -> Result<BatchResponse> {
        let mut packer = PipelinesBatchPacker::new();
        let mut batches = Vec::new();
        for call in calls {
            batches.extend(packer.push(call)?);
        }
        batches.extend(packer.finish());
        let mut response = BatchResponse::default();
        let mut sent = 0;
        for batch in &batches {
            self.deliver(&batch.body, sent, &mut response.rejected)?;
            sent += batch.len();
        }
        Ok(response)
    }

    /// Sends `body`; on a 400 or 413, its halves in turn, down to single
    /// calls. `offset` is the index of the body's first call in the caller's
    /// numbering.
    fn deliver(
        &self,
        body: &BatchBody,
        offset: usize,
        rejected: &mut Vec<ItemError>,
    ) -> Result<()> {
        match self.post_pipelines("/v1/batch".into(), body.bytes().to_vec()) {
            Err(Error::Status {
                status: status @ (400 | 413),
                message,
                ..
            }) => {
                if body.len() == 1 {
                    rejected.push(ItemError {
                        index: offset,
                        reason: if status == 413 {
                            "too_large"
                        } else {
                            "invalid"
                        }
                        .into(),
                        field: None,
                        message,
                    });
                    return Ok(());
                }
                let half = body.len() / 2;
                self.deliver(&body.slice(0..half), offset, rejected)?;
                self.deliver(&body.slice(half..body.len()), offset + half, rejected)
            }
            other => other,
        }
    }

    fn post_pipelines(&self, path: String, body: Vec<u8>) -> Result<()> {
        self.send(&Request {
            class: ApiClass::Pipelines,
            call: Call::safe("pipelines"),
            method: Method::Post,
            path,
            body: Some(body),
        })?;
        Ok(())
    }
}
