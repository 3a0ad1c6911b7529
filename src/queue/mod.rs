//! The queue room: a fixed pool of worker threads fed by a bounded channel.
//!
//! # Overview
//!
//! - [`Dispatcher`] and [`DispatcherBuilder`]: submit jobs, get a
//!   [`Ticket`] per job, feel backpressure when the queue is full, shut
//!   down gracefully and get back what did not run.
//! - [`ClientDispatcher`] and [`ClientCall`]: the same pool running
//!   [`Client`](crate::Client) calls.
//! - [`DispatcherStats`]: what the pool has done.
//!
//! A pure thread pool: it knows nothing of retries. This room uses the
//! client and limit rooms; the importer uses it.

pub(crate) mod client_call;
pub(crate) mod dispatcher;
pub(crate) mod stats;
pub(crate) mod ticket;

pub use client_call::{CallTicket, ClientCall, ClientDispatcher, Reply};
pub use dispatcher::{Dispatcher, DispatcherBuilder, SubmitError, TrySubmitError};
pub use stats::DispatcherStats;
pub use ticket::{JobError, Outcome, Ticket};
