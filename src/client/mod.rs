//! The client room: Customer.io's APIs, one blocking call at a time.
//!
//! # Overview
//!
//! - [`Client`] and [`ClientBuilder`]: Track v1 and v2, the App API and the
//!   Pipelines API, each call rate limited and retried through the rooms
//!   below: App sends on the transactional limiter, App reads on the App
//!   limiter, Pipelines calls on their own.
//! - What calls carry: [`Identifier`], [`Event`], [`Device`], [`Operation`],
//!   [`TransactionalMessage`], [`BroadcastTrigger`], [`PushMetric`].
//! - What App API reads return: [`PersonIdentifiers`], [`PersonProfile`],
//!   [`Segment`], [`Export`]; [`SegmentMembers`] pages through a segment.
//! - Batches: [`BatchPacker`] packs operations into [`Batch`]es under
//!   Customer.io's size limits, each item's bytes as they will go out;
//!   [`Client::send_batch`] isolates the items the server rejects (from a
//!   207, or by resending them one by one when it refuses the whole batch),
//!   and [`BatchResponse`] and [`ItemError`](crate::error::ItemError) say which.
//! - [`validate`]: Customer.io's size limits, checked before anything is sent.
//! - [`Region`](crate::Region): which hosts a workspace answers on.
//!
//! # Pipelines
//!
//! The Pipelines API (Customer.io Data Pipelines, `cdp.customer.io`) takes
//! Segment-style calls, authenticated by a source's write key alone
//! ([`ClientBuilder::pipelines_key`]):
//!
//! - [`PipelinesCall`]: identify, track, page, screen, group and alias, each
//!   with a `messageId` (random, or [derived from a key](PipelinesCall::message_id_from_key))
//!   so that a retried call counts once; [`PipelinesCall::from_line`] reads
//!   one NDJSON line and derives the `messageId` from the line's identity.
//! - [`PipelinesBatchPacker`] packs calls into [`PipelinesBatch`]es for
//!   `/v1/batch` (under 500 KB, each call at most 32 KB).
//! - [`Client::send_pipelines`], [`Client::send_pipelines_batch`] and
//!   [`Client::send_pipelines_calls`] send them on their own limiter
//!   ([`ApiClass::Pipelines`](crate::ApiClass::Pipelines)). Every request
//!   carries `X-Strict-Mode: 1`: by default the Pipelines API answers 200 to
//!   an invalid call and drops it. A batch refused with a 400 is split until
//!   only the bad calls are left; they are reported, the others delivered.
//!
//! This room uses the retry and limit rooms; it knows nothing of queues or
//! imports.

pub(crate) mod app;
pub(crate) mod base_url;
pub(crate) mod batch;
pub(crate) mod batch_body;
#[allow(clippy::module_inception)]
pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod device;
pub(crate) mod event;
pub(crate) mod event_id;
pub(crate) mod exports;
pub(crate) mod identifier;
pub(crate) mod item_error;
pub(crate) mod messages;
pub(crate) mod operation;
pub(crate) mod people;
pub(crate) mod pipelines;
pub(crate) mod pipelines_batch;
pub(crate) mod pipelines_call;
pub(crate) mod push_metric;
pub(crate) mod rejection;
pub(crate) mod request;
pub(crate) mod segments;
pub(crate) mod track;
pub mod validate;

pub use app::{BroadcastTrigger, Delivery, TransactionalMessage};
pub use batch::{Batch, BatchPacker, BatchResponse};
pub use client::{Client, ClientBuilder};
pub use device::{Device, Platform};
pub use event::{Event, EventKind};
pub use event_id::EventId;
pub use exports::Export;
pub use identifier::Identifier;
pub use operation::Operation;
pub use people::{PersonIdentifiers, PersonProfile};
pub use pipelines_batch::{PipelinesBatch, PipelinesBatchPacker};
pub use pipelines_call::{PipelinesCall, PipelinesCallType, PipelinesUser};
pub use push_metric::{PushEvent, PushMetric};
pub use segments::{MAX_SEGMENT_IDS_PER_REQUEST, Segment, SegmentMembers};
