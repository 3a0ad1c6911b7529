//! The client room: Customer.io's APIs, one blocking call at a time.
//!
//! # Overview
//!
//! - [`Client`] and [`ClientBuilder`]: Track v1 and v2 and the App API, each
//!   call rate limited and retried through the rooms below.
//! - What calls carry: [`Identifier`], [`Event`], [`Device`], [`Operation`],
//!   [`TransactionalMessage`], [`BroadcastTrigger`].
//! - Batches: [`BatchPacker`] packs operations into [`Batch`]es under
//!   Customer.io's size limits; [`BatchResponse`] and [`ItemError`] say what
//!   came back.
//! - [`validate`]: Customer.io's size limits, checked before anything is sent.
//! - [`Region`]: which hosts a workspace answers on.
//!
//! This room uses the retry and limit rooms; it knows nothing of queues or
//! imports.

pub(crate) mod app;
pub(crate) mod base_url;
pub(crate) mod batch;
#[allow(clippy::module_inception)]
pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod device;
pub(crate) mod event;
pub(crate) mod event_id;
pub(crate) mod identifier;
pub(crate) mod item_error;
pub(crate) mod operation;
pub(crate) mod region;
pub(crate) mod request;
pub(crate) mod track;
pub mod validate;

pub use app::{BroadcastTrigger, Delivery, TransactionalMessage};
pub use batch::{Batch, BatchPacker, BatchResponse};
pub use client::{Client, ClientBuilder};
pub use device::{Device, Platform};
pub use event::{Event, EventKind};
pub use event_id::EventId;
pub use identifier::Identifier;
pub use item_error::ItemError;
pub use operation::Operation;
pub use region::Region;
pub use validate::Invalid;
