//! The Track API: people, events, devices (v1), and operations and batches (v2).

use serde::Serialize;
use serde_json::Value;

use crate::client::batch::{Batch, BatchPacker, BatchResponse};
use crate::client::client::Client;
use crate::client::device::Device;
use crate::client::event::{Event, to_object};
use crate::client::identifier::{Identifier, percent_encode};
use crate::client::operation::Operation;
use crate::client::rejection::rejected_item;
use crate::client::request::{Answer, Method, Request};
use crate::client::validate::{self, Invalid};
use crate::error::ItemError;
use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::retry::policy::Call;

impl Client {
    /// Creates or updates a person with `attributes`, a JSON object
    /// (`PUT /api/v1/customers/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) without sending if the
    /// identifier or an attribute breaks Customer.io's limits; otherwise what
    /// the server answered after retries (see [`Error`](crate::Error)).
    pub fn identify(
        &self,
        person: impl Into<Identifier>,
        attributes: impl Serialize,
    ) -> Result<()> {
        let person = person.into();
        person.validate()?;
        let attributes = to_object(attributes, "attributes")?;
        validate::attributes(&attributes)?;
        self.track_v1(
            Call::safe("identify"),
            Method::Put,
            &person,
            "",
            Some(&Value::Object(attributes)),
        )
    }

    /// Records `event` for a person (`POST /api/v1/customers/{id}/events`),
    /// with the event's id so that a retry is counted once.
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify); [`Invalid::MissingEventName`] for an
    /// event without a name.
    pub fn track(&self, person: impl Into<Identifier>, event: &Event) -> Result<()> {
        let person = person.into();
        person.validate()?;
        event.validate()?;
        let body = Value::Object(event.v1_body());
        self.track_v1(
            Call::safe("track"),
            Method::Post,
            &person,
            "/events",
            Some(&body),
        )
    }

    /// Records `event` for a visitor not yet identified (`POST /api/v1/events`).
    ///
    /// # Errors
    ///
    /// As [`track`](Client::track); [`Invalid::MissingAnonymousId`] for an
    /// empty `anonymous_id`.
    pub fn track_anonymous(&self, anonymous_id: &str, event: &Event) -> Result<()> {
        if anonymous_id.is_empty() {
            return Err(Invalid::MissingAnonymousId.into());
        }
        validate::identifier("anonymous_id", anonymous_id)?;
        event.validate()?;
        let mut body = event.v1_body();
        body.insert("anonymous_id".into(), Value::String(anonymous_id.into()));
        self.send_json(
            Call::safe("track_anonymous"),
            Method::Post,
            "/api/v1/events".into(),
            Some(&Value::Object(body)),
        )?;
        Ok(())
    }

    /// Records an invite: an anonymous event without an anonymous id whose
    /// `data.recipient` is the email address a campaign it triggers writes to
    /// (`POST /api/v1/events`; the "invite event" form of Customer.io's
    /// `trackAnonymous`). Nobody is created in the workspace.
    ///
    /// ```no_run
    /// use cio_ratelimit::{Client, Event};
    /// use serde_json::json;
    ///
    /// let client = Client::builder("site-id", "track-api-key").build()?;
    /// let invite = Event::new("invited").data(json!({"from": "Ada"}))?;
    /// client.track_invite("grace@example.com", &invite)?;
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`track`](Client::track); [`Invalid::EmptyIdentifier`] for an
    /// empty recipient.
    pub fn track_invite(&self, recipient: &str, event: &Event) -> Result<()> {
        validate::identifier("recipient", recipient)?;
        event.validate()?;
        let mut body = event.v1_body();
        let data = body
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            data.insert("recipient".into(), Value::String(recipient.into()));
        }
        self.send_json(
            Call::safe("track_invite"),
            Method::Post,
            "/api/v1/events".into(),
            Some(&Value::Object(body)),
        )?;
        Ok(())
    }

    /// Stops all messages to a person (`POST /api/v1/customers/{id}/suppress`).
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    pub fn suppress(&self, person: impl Into<Identifier>) -> Result<()> {
        let person = person.into();
        person.validate()?;
        self.track_v1(
            Call::safe("suppress"),
            Method::Post,
            &person,
            "/suppress",
            None,
        )
    }

    /// Lets messages reach a suppressed person again
    /// (`POST /api/v1/customers/{id}/unsuppress`).
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    pub fn unsuppress(&self, person: impl Into<Identifier>) -> Result<()> {
        let person = person.into();
        person.validate()?;
        self.track_v1(
            Call::safe("unsuppress"),
            Method::Post,
            &person,
            "/unsuppress",
            None,
        )
    }

    /// Deletes a person (`DELETE /api/v1/customers/{id}`); `destroy` in
    /// Customer.io's reference and customerio-node.
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    #[doc(alias = "destroy")]
    pub fn delete(&self, person: impl Into<Identifier>) -> Result<()> {
        let person = person.into();
        person.validate()?;
        self.track_v1(Call::safe("delete"), Method::Delete, &person, "", None)
    }

    /// Adds or updates a person's device (`PUT /api/v1/customers/{id}/devices`).
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    pub fn add_device(&self, person: impl Into<Identifier>, device: &Device) -> Result<()> {
        let person = person.into();
        person.validate()?;
        device.validate()?;
        self.track_v1(
            Call::safe("add_device"),
            Method::Put,
            &person,
            "/devices",
            Some(&device.v1_body()),
        )
    }

    /// Removes a device by its token (`DELETE /api/v1/customers/{id}/devices/{token}`).
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    pub fn delete_device(&self, person: impl Into<Identifier>, device_id: &str) -> Result<()> {
        let person = person.into();
        person.validate()?;
        validate::identifier("device id", device_id)?;
        let suffix = format!("/devices/{}", percent_encode(device_id));
        self.track_v1(
            Call::safe("delete_device"),
            Method::Delete,
            &person,
            &suffix,
            None,
        )
    }

    /// Merges `secondary` into `primary`; the secondary person is deleted
    /// (`POST /api/v1/merge_customers`). Not repeated on 5xx or timeouts
    /// unless the retry policy opts in: the second attempt would find the
    /// secondary person gone.
    ///
    /// # Errors
    ///
    /// As [`identify`](Client::identify).
    pub fn merge_customers(&self, primary: &Identifier, secondary: &Identifier) -> Result<()> {
        primary.validate()?;
        secondary.validate()?;
        let body =
            serde_json::json!({ "primary": primary.to_json(), "secondary": secondary.to_json() });
        let call = Call::unsafe_to_repeat("merge_customers");
        self.send_json(
            call,
            Method::Post,
            "/api/v1/merge_customers".into(),
            Some(&body),
        )?;
        Ok(())
    }

    /// Sends one v2 operation (`POST /api/v2/entity`).
    ///
    /// # Errors
    ///
    /// What the server answered after retries (see [`Error`](crate::Error)).
    pub fn send_entity(&self, operation: &Operation) -> Result<()> {
        let call = repeatable_call("send_entity", operation.is_repeatable());
        self.send(&entity(call, operation.as_bytes()))?;
        Ok(())
    }

    /// Sends one packed batch (`POST /api/v2/batch`), and isolates the items
    /// Customer.io rejects, so that only they fail:
    ///
    /// - a 207 names them, and the others were accepted;
    /// - when the server refuses the whole batch as invalid (400, 413, 422),
    ///   each item is sent alone (`/api/v2/entity`, byte for byte as in the
    ///   batch) and those it refuses are the rejected ones.
    ///
    /// Either way they come back as data in the [`BatchResponse`]. A 207 that
    /// cannot be trusted to name the right items (unreadable, an item without
    /// its index or past the end) fails the whole batch as a transient
    /// [`Error::Unreadable`], which the retry policy retries.
    ///
    /// # Errors
    ///
    /// What the server answered after retries when the whole batch failed
    /// for any other reason (throttling, 5xx, credentials, ...). Items sent
    /// alone before such a failure may have been accepted.
    pub fn send_batch(&self, batch: &Batch) -> Result<BatchResponse> {
        let call = repeatable_call("send_batch", batch.repeatable());
        let request = Request {
            class: ApiClass::Track,
            call,
            method: Method::Post,
            path: "/api/v2/batch".into(),
            body: Some(batch.body().to_vec()),
        };
        let error = match self.send_reading(&request, |answer| batch_response(&answer, batch.len()))
        {
            Err(error) if error.rejects_content() => error,
            answered => return answered,
        };
        if batch.len() == 1 {
            let item = rejected_item(0, &error).expect("the error rejects content");
            return Ok(BatchResponse {
                rejected: vec![item],
            });
        }
        let mut rejected = Vec::new();
        for index in 0..batch.len() {
            let item = batch.item(index).expect("an index within the batch");
            // Each item is as safe to repeat as the batch: which one held a merge is not kept.
            let call = repeatable_call("send_batch item", batch.repeatable());
            if let Err(error) = self.send(&entity(call, item)) {
                rejected.push(rejected_item(index, &error).ok_or(error)?);
            }
        }
        Ok(BatchResponse { rejected })
    }

    /// Packs any number of operations into batches under Customer.io's size
    /// limits and sends them in order. Rejected items are reported with their
    /// index in `operations`.
    ///
    /// # Errors
    ///
    /// The first batch that failed as a whole (after retries); the batches
    /// before it were delivered, the ones after it not sent.
    pub fn send_operations<'a>(
        &self,
        operations: impl IntoIterator<Item = &'a Operation>,
    ) -> Result<BatchResponse> {
        let mut packer = BatchPacker::new();
        let mut report = BatchResponse::default();
        let mut sent = 0;
        let mut send = |batch: Batch, report: &mut BatchResponse| -> Result<()> {
            let response = self.send_batch(&batch)?;
            report
                .rejected
                .extend(response.rejected.into_iter().map(|mut item| {
                    item.index += sent;
                    item
                }));
            sent += batch.len();
            Ok(())
        };
        for operation in operations {
            if let Some(full) = packer.push(operation)? {
                send(full, &mut report)?;
            }
        }
        if let Some(last) = packer.finish() {
            send(last, &mut report)?;
        }
        Ok(report)
    }

    fn track_v1(
        &self,
        call: Call<'_>,
        method: Method,
        person: &Identifier,
        suffix: &str,
        body: Option<&Value>,
    ) -> Result<()> {
        let path = format!("/api/v1/customers/{}{suffix}", person.path_segment());
        self.send_json(call, method, path, body)?;
        Ok(())
    }

    /// Sends a Track API request with a JSON body.
    pub(crate) fn send_json(
        &self,
        call: Call<'_>,
        method: Method,
        path: String,
        body: Option<&Value>,
    ) -> Result<crate::client::request::Answer> {
        let body =
            body.map(|body| serde_json::to_vec(body).expect("a JSON value always serializes"));
        self.send(&Request {
            class: ApiClass::Track,
            call,
            method,
            path,
            body,
        })
    }
}

fn repeatable_call(name: &str, repeatable: bool) -> Call<'_> {
    if repeatable {
        Call::safe(name)
    } else {
        Call::unsafe_to_repeat(name)
    }
}

/// `POST /api/v2/entity` with one operation's bytes.
fn entity<'a>(call: Call<'a>, operation: &[u8]) -> Request<'a> {
    Request {
        class: ApiClass::Track,
        call,
        method: Method::Post,
        path: "/api/v2/entity".into(),
        body: Some(operation.to_vec()),
    }
}

/// A 207's item errors; any other success means every item was accepted. A
/// 207 that cannot name the right items is an error, retried: claiming every
/// item was accepted would hide the rejected ones, and blaming the wrong ones
/// would lose good data.
fn batch_response(answer: &Answer, items: usize) -> Result<BatchResponse> {
    if answer.status != 207 {
        return Ok(BatchResponse::default());
    }
    match ItemError::from_207(&answer.body, items) {
        Ok(rejected) => Ok(BatchResponse { rejected }),
        Err(reason) => Err(Error::Unreadable {
            status: answer.status,
            message: format!("the list of rejected items: {reason}"),
        }),
    }
}
