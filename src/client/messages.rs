//! Transactional SMS, in-app and inbox messages (email and push are in
//! [`app`](super::app)).
//!
//! Endpoints, from Customer.io's App API reference and the official clients
//! (customerio-node `sendSMS`, `sendInApp`, `sendInboxMessage`;
//! go-customerio `SendSMS`, `SendInApp`, `SendInboxMessage`):
//! `POST /v1/send/sms`, `/v1/send/in_app`, `/v1/send/inbox_message`, each
//! with `{transactional_message_id, identifiers, message_data, ...}` (SMS
//! also `to`, `from`) and answering `{delivery_id, queued_at}`.

use crate::client::app::{Delivery, TransactionalMessage};
use crate::client::client::Client;
use crate::error::Result;

impl Client {
    /// Sends a transactional SMS (`POST /v1/send/sms`) on the transactional
    /// limiter; [`to`](TransactionalMessage::to) is the phone number, else
    /// the person's. Not repeated after a 5xx or a timeout unless the retry
    /// policy opts in: the person might get it twice.
    ///
    /// ```no_run
    /// use cio_ratelimit::{Client, Identifier, TransactionalMessage};
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// let code = TransactionalMessage::new(3, Identifier::id("42")).to("+14155552671");
    /// let delivery = client.send_sms(&code)?;
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_email`](Client::send_email).
    #[doc(alias = "sendSMS")]
    pub fn send_sms(&self, message: &TransactionalMessage) -> Result<Delivery> {
        self.send_transactional("send_sms", "/v1/send/sms", message)
    }

    /// Sends a transactional in-app message (`POST /v1/send/in_app`); as
    /// [`send_sms`](Client::send_sms).
    ///
    /// # Errors
    ///
    /// As [`send_email`](Client::send_email).
    #[doc(alias = "sendInApp")]
    pub fn send_in_app(&self, message: &TransactionalMessage) -> Result<Delivery> {
        self.send_transactional("send_in_app", "/v1/send/in_app", message)
    }

    /// Sends a transactional inbox message (`POST /v1/send/inbox_message`);
    /// as [`send_sms`](Client::send_sms).
    ///
    /// # Errors
    ///
    /// As [`send_email`](Client::send_email).
    #[doc(alias = "sendInboxMessage")]
    pub fn send_inbox_message(&self, message: &TransactionalMessage) -> Result<Delivery> {
        self.send_transactional("send_inbox_message", "/v1/send/inbox_message", message)
    }
}
