//! Segments: list them, the ones a person is in, and a segment's members a
//! page at a time (App API); add people to or remove them from a manual
//! segment (Track API).
//!
//! Endpoints, from Customer.io's references: `GET /v1/segments`
//! (`listSegments`), `GET /v1/customers/{id}/segments?id_type=`
//! (`getPersonSegments`), `GET /v1/segments/{id}/membership?start=&limit=`
//! (`getSegmentMembership`, paged by a `next` token), and
//! `POST /api/v1/segments/{id}/add_customers` and `…/remove_customers` with
//! `{"ids": [...]}` and `?id_type=id|email|cio_id` (`add_to_segment`,
//! `remove_from_segment`: "You are limited to 1000 customer IDs per request").

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::client::Client;
use crate::client::identifier::{Identifier, percent_encode};
use crate::client::people::{PersonIdentifiers, person_path};
use crate::client::request::Method;
use crate::error::Result;
use crate::retry::policy::Call;

/// The most people one add or remove request may name, as Customer.io
/// documents; longer lists are split into several requests.
pub const MAX_SEGMENT_IDS_PER_REQUEST: usize = 1000;

/// How many members one page of [`SegmentMembers`] asks for.
const MEMBERS_PER_PAGE: usize = 1000;

/// A segment, as the App API describes it.
///
/// Fields not named here (`progress`, `tags`, `deduplicate_id`, and any
/// Customer.io adds later) are kept in [`extra`](Segment::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The segment's id.
    pub id: u64,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// `"manual"` or `"dynamic"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where building it stands: `"finished"`, `"build"`, `"events"`, ...
    #[serde(default)]
    pub state: Option<String>,
    /// Any other field of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Client {
    /// The segments a person is in (`GET /v1/customers/{id}/segments`), on
    /// the App limiter.
    ///
    /// # Errors
    ///
    /// As [`person_attributes`](Client::person_attributes).
    pub fn person_segments(&self, person: impl Into<Identifier>) -> Result<Vec<Segment>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            segments: Vec<Segment>,
        }
        let path = person_path(&person.into(), "segments")?;
        Ok(self.read::<Answer>("person_segments", path)?.segments)
    }

    /// Every segment of the workspace (`GET /v1/segments`), on the App
    /// limiter.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredential`](crate::Error::MissingCredential) without
    /// an App API key; otherwise what the server answered after retries.
    #[doc(alias = "listSegments")]
    pub fn segments(&self) -> Result<Vec<Segment>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            segments: Vec<Segment>,
        }
        Ok(self
            .read::<Answer>("segments", "/v1/segments".into())?
            .segments)
    }

    /// The people in a segment, as a blocking iterator that fetches the next
    /// page (`GET /v1/segments/{id}/membership`) on the App limiter when the
    /// one it holds runs out. Nothing is sent until the first `next()`.
    ///
    /// ```no_run
    /// use cio_ratelimit::Client;
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// for person in client.segment_members(7) {
    ///     println!("{}", person?.cio_id);
    /// }
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    #[doc(alias = "getSegmentMembership")]
    pub fn segment_members(&self, segment_id: u64) -> SegmentMembers {
        SegmentMembers {
            client: self.clone(),
            segment_id,
            page: VecDeque::new(),
            next: Some(String::new()),
        }
    }

    /// Adds people to a manual segment
    /// (`POST /api/v1/segments/{id}/add_customers`), on the Track limiter, in
    /// as few requests as Customer.io's limit of
    /// [`MAX_SEGMENT_IDS_PER_REQUEST`] ids per request allows: one per kind of
    /// identifier and per thousand people. Adding is safe to repeat.
    ///
    /// ```no_run
    /// use cio_ratelimit::{Client, Identifier};
    ///
    /// let client = Client::builder("site-id", "track-api-key").build()?;
    /// client.add_to_segment(7, &["42".into(), Identifier::email("ada@example.com")])?;
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) before anything is sent if
    /// an identifier is empty or too long; otherwise the first request that
    /// failed (after retries): the ones before it were applied.
    #[doc(alias = "AddPeopleToSegment")]
    pub fn add_to_segment(&self, segment_id: u64, people: &[Identifier]) -> Result<()> {
        self.segment_membership(segment_id, "add_customers", people)
    }

    /// Removes people from a manual segment
    /// (`POST /api/v1/segments/{id}/remove_customers`); as
    /// [`add_to_segment`](Client::add_to_segment).
    ///
    /// # Errors
    ///
    /// As [`add_to_segment`](Client::add_to_segment).
    #[doc(alias = "RemovePeopleFromSegment")]
    pub fn remove_from_segment(&self, segment_id: u64, people: &[Identifier]) -> Result<()> {
        self.segment_membership(segment_id, "remove_customers", people)
    }

    fn segment_membership(
        &self,
        segment_id: u64,
        action: &str,
        people: &[Identifier],
    ) -> Result<()> {
        for person in people {
            person.validate()?;
        }
        for kind in ["id", "email", "cio_id"] {
            let ids: Vec<&str> = people
                .iter()
                .filter(|person| person.kind() == kind)
                .map(Identifier::value)
                .collect();
            for chunk in ids.chunks(MAX_SEGMENT_IDS_PER_REQUEST) {
                self.send_json(
                    Call::safe(action),
                    Method::Post,
                    format!("/api/v1/segments/{segment_id}/{action}?id_type={kind}"),
                    Some(&json!({ "ids": chunk })),
                )?;
            }
        }
        Ok(())
    }
}

/// The people in a segment, a page at a time; see
/// [`Client::segment_members`].
///
/// Each item is a person or the error that stopped the listing; after an
/// error the iterator ends. Each page is one request on the App limiter,
/// retried as any read.
#[derive(Debug)]
pub struct SegmentMembers {
    client: Client,
    segment_id: u64,
    page: VecDeque<PersonIdentifiers>,
    /// The `start` token of the next page; `None` once the last page came.
    next: Option<String>,
}

impl Iterator for SegmentMembers {
    type Item = Result<PersonIdentifiers>;

    fn next(&mut self) -> Option<Self::Item> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            identifiers: Vec<PersonIdentifiers>,
            #[serde(default)]
            next: Option<String>,
        }
        while self.page.is_empty() {
            let start = self.next.take()?;
            let mut path = format!(
                "/v1/segments/{}/membership?limit={MEMBERS_PER_PAGE}",
                self.segment_id
            );
            if !start.is_empty() {
                path.push_str("&start=");
                path.push_str(&percent_encode(&start));
            }
            match self.client.read::<Page>("segment_members", path) {
                Ok(page) => {
                    self.next = page.next.filter(|next| !next.is_empty());
                    self.page = page.identifiers.into();
                }
                Err(error) => return Some(Err(error)),
            }
        }
        self.page.pop_front().map(Ok)
    }
}

impl std::iter::FusedIterator for SegmentMembers {}
