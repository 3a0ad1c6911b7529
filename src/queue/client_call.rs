//! Queueing `Client` calls on a `Dispatcher`: the calls as data, and their replies.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::app::{BroadcastTrigger, Delivery, TransactionalMessage};
use crate::client::batch::{Batch, BatchResponse};
use crate::client::client::Client;
use crate::client::device::Device;
use crate::client::event::{Event, to_object};
use crate::client::identifier::Identifier;
use crate::client::operation::Operation;
use crate::client::pipelines_batch::PipelinesBatch;
use crate::client::pipelines_call::PipelinesCall;
use crate::error::{Error, Result};
use crate::queue::dispatcher::{Dispatcher, DispatcherBuilder, SubmitError};
use crate::queue::ticket::Ticket;

/// One [`Client`] call as data, to queue on a [`Dispatcher`] built with
/// [`DispatcherBuilder::build_for_client`]. Calls a shutdown hands back can be
/// kept and queued again later.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientCall {
    /// [`Client::identify`].
    Identify(Identifier, Map<String, Value>),
    /// [`Client::track`]. (Boxed to keep calls small in the queue.)
    Track(Identifier, Box<Event>),
    /// [`Client::track_anonymous`].
    TrackAnonymous(String, Box<Event>),
    /// [`Client::delete`].
    Delete(Identifier),
    /// [`Client::suppress`].
    Suppress(Identifier),
    /// [`Client::unsuppress`].
    Unsuppress(Identifier),
    /// [`Client::add_device`].
    AddDevice(Identifier, Device),
    /// [`Client::delete_device`].
    DeleteDevice(Identifier, String),
    /// [`Client::send_entity`].
    Entity(Operation),
    /// [`Client::send_batch`].
    Batch(Batch),
    /// [`Client::send_email`].
    SendEmail(TransactionalMessage),
    /// [`Client::send_push`].
    SendPush(TransactionalMessage),
    /// [`Client::trigger_broadcast`].
    TriggerBroadcast(u64, Map<String, Value>),
    /// [`Client::send_pipelines`]. (Boxed to keep calls small in the queue.)
    Pipelines(Box<PipelinesCall>),
    /// [`Client::send_pipelines_batch`]; replies [`Reply::Batch`].
    PipelinesBatch(PipelinesBatch),
}

/// What a queued [`ClientCall`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// The call was accepted; it returns nothing more.
    Done,
    /// A batch's response (rejected items, if any).
    Batch(BatchResponse),
    /// A transactional message's receipt.
    Delivery(Delivery),
    /// A broadcast trigger's receipt.
    Broadcast(BroadcastTrigger),
}

impl ClientCall {
    /// Makes the call on `client`, blocking: limiter, retries and all. The
    /// call is kept, e.g. to look up the items a batch's reply rejected.
    ///
    /// # Errors
    ///
    /// Whatever the client's method returns.
    pub fn run(&self, client: &Client) -> Result<Reply> {
        let done = |result: Result<()>| result.map(|()| Reply::Done);
        match self {
            ClientCall::Identify(person, attributes) => {
                done(client.identify(person.clone(), attributes))
            }
            ClientCall::Track(person, event) => done(client.track(person.clone(), event)),
            ClientCall::TrackAnonymous(anonymous_id, event) => {
                done(client.track_anonymous(anonymous_id, event))
            }
            ClientCall::Delete(person) => done(client.delete(person.clone())),
            ClientCall::Suppress(person) => done(client.suppress(person.clone())),
            ClientCall::Unsuppress(person) => done(client.unsuppress(person.clone())),
            ClientCall::AddDevice(person, device) => {
                done(client.add_device(person.clone(), device))
            }
            ClientCall::DeleteDevice(person, device_id) => {
                done(client.delete_device(person.clone(), device_id))
            }
            ClientCall::Entity(operation) => done(client.send_entity(operation)),
            ClientCall::Batch(batch) => client.send_batch(batch).map(Reply::Batch),
            ClientCall::SendEmail(message) => client.send_email(message).map(Reply::Delivery),
            ClientCall::SendPush(message) => client.send_push(message).map(Reply::Delivery),
            ClientCall::TriggerBroadcast(campaign_id, body) => client
                .trigger_broadcast(*campaign_id, body)
                .map(Reply::Broadcast),
            ClientCall::Pipelines(call) => done(client.send_pipelines(call)),
            ClientCall::PipelinesBatch(batch) => {
                client.send_pipelines_batch(batch).map(Reply::Batch)
            }
        }
    }
}

impl DispatcherBuilder<ClientCall, Result<Reply>> {
    /// Starts workers that make [`ClientCall`]s on `client`. The calls wait
    /// on the client's own limiters and retry as its policy says, so the
    /// dispatcher adds no second rate and knows nothing of retries.
    ///
    /// ```
    /// use cio_ratelimit::{Client, Dispatcher};
    /// use serde_json::json;
    /// # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
    ///
    /// let client = Client::builder(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY)
    ///     .track_url(emulator.url())
    ///     .build()?;
    /// let dispatcher = Dispatcher::builder().workers(4).build_for_client(client)?;
    /// let ticket = dispatcher.identify("42", json!({"plan": "pro"}))?;
    /// dispatcher.identify("43", json!({"plan": "free"}))?; // or drop the ticket
    /// ticket.wait()??;
    /// dispatcher.flush();
    /// assert_eq!(emulator.snapshot().people.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](DispatcherBuilder::build).
    pub fn build_for_client(self, client: Client) -> Result<ClientDispatcher> {
        self.build(move |call: ClientCall| call.run(&client))
    }
}

/// A [`Dispatcher`] of [`Client`] calls.
pub type ClientDispatcher = Dispatcher<ClientCall, Result<Reply>>;

/// The ticket of a queued [`ClientCall`].
pub type CallTicket = Ticket<Result<Reply>>;

impl Dispatcher<ClientCall, Result<Reply>> {
    /// Queues [`Client::identify`]. Attributes that are not a JSON object
    /// are refused at once, through the ticket.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn identify(
        &self,
        person: impl Into<Identifier>,
        attributes: impl Serialize,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        match to_object(attributes, "attributes") {
            Ok(attributes) => self.submit(ClientCall::Identify(person.into(), attributes)),
            Err(invalid) => Ok(refused(invalid.into())),
        }
    }

    /// Queues [`Client::track`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn track(
        &self,
        person: impl Into<Identifier>,
        event: Event,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::Track(person.into(), Box::new(event)))
    }

    /// Queues [`Client::track_anonymous`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn track_anonymous(
        &self,
        anonymous_id: impl Into<String>,
        event: Event,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::TrackAnonymous(
            anonymous_id.into(),
            Box::new(event),
        ))
    }

    /// Queues [`Client::delete`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn delete(
        &self,
        person: impl Into<Identifier>,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::Delete(person.into()))
    }

    /// Queues [`Client::send_entity`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn send_entity(
        &self,
        operation: Operation,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::Entity(operation))
    }

    /// Queues [`Client::send_batch`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn send_batch(
        &self,
        batch: Batch,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::Batch(batch))
    }

    /// Queues [`Client::send_email`].
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the call, if the dispatcher is closed.
    pub fn send_email(
        &self,
        message: TransactionalMessage,
    ) -> std::result::Result<CallTicket, SubmitError<ClientCall>> {
        self.submit(ClientCall::SendEmail(message))
    }
}

/// A ticket that already holds `error`: refused before it was queued.
fn refused(error: Error) -> CallTicket {
    let (reply, result) = crossbeam_channel::bounded(1);
    let _ = reply.send(Ok(Err(error)));
    Ticket::new(result)
}
