//! Lanes: one person's entries reach the server in input order, whatever
//! the workers, batches, retries and resumes.
//!
//! Entries are spread over the lanes (one per worker) by the person they
//! name ([`Entry::person`]): the same person always lands in the same lane.
//! Each lane packs its own batches and has at most one request in flight. A
//! call retries inside `ClientCall::run`, so a lane's next request goes only
//! once the one before it is answered, retries included: nothing overtakes
//! it. A full batch that finds its lane busy is held, one per lane; the
//! import waits for the lane before it holds a second, so memory stays
//! bounded.
//!
//! Resumes keep the order too: the checkpoint never passes a line still open
//! in any lane, so a resume sends each person's unsettled lines again, in
//! order, and their last write is still their last line.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crossbeam_channel::Select;

use crate::import::entry::{Entry, Packer};
use crate::import::ledger::ChunkId;
use crate::queue::client_call::ClientCall;
use crate::queue::ticket::Ticket;

/// One lane: its packer and its requests, at most one in flight.
pub(crate) struct Lane<R> {
    pub(crate) packer: Packer,
    /// The ledger's chunk for the lines in `packer`, and its first line.
    pub(crate) packing: Option<(ChunkId, u64)>,
    /// The request the server is working on.
    pub(crate) in_flight: Option<(ChunkId, Ticket<R>)>,
    /// A request ready to go once `in_flight` is answered.
    pub(crate) held: Option<(ChunkId, ClientCall)>,
}

impl<R> Lane<R> {
    pub(crate) fn new(packer: Packer) -> Lane<R> {
        Lane {
            packer,
            packing: None,
            in_flight: None,
            held: None,
        }
    }
}

/// The lane, of `lanes`, for `entry` on `line`: by the person it names, or
/// by its line when it names no one.
pub(crate) fn lane_for(entry: &Entry, line: u64, lanes: usize) -> usize {
    let key = match entry.person() {
        Some(person) => {
            // A fixed-key hasher: the same person lands in the same lane in every run.
            let mut hasher = DefaultHasher::new();
            person.hash(&mut hasher);
            hasher.finish()
        }
        None => line,
    };
    (key % lanes as u64) as usize
}

/// The lane whose packed lines began more than `lag` lines before `line`,
/// if any: a lane that rarely gets a line (a person named once in a file of
/// others) would otherwise hold the checkpoint back to its first line until
/// the end of the input.
pub(crate) fn lagging<R>(lanes: &[Lane<R>], line: u64, lag: u64) -> Option<usize> {
    lanes
        .iter()
        .enumerate()
        .filter_map(|(index, lane)| lane.packing.map(|(_, first)| (first, index)))
        .min()
        .filter(|&(first, _)| line.saturating_sub(first) > lag)
        .map(|(_, index)| index)
}

/// Blocks until a request in flight in one of `lanes` is answered, or
/// `timeout` has passed; at once when none is in flight.
pub(crate) fn wait_for_an_answer<R>(lanes: &[Lane<R>], timeout: Duration) {
    let mut select = Select::new();
    let mut waiting = false;
    for (_, ticket) in lanes.iter().filter_map(|lane| lane.in_flight.as_ref()) {
        select.recv(ticket.receiver());
        waiting = true;
    }
    if waiting {
        // Readiness is all: the answer is taken with `try_wait`.
        let _ = select.ready_timeout(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::operation::Operation;
    use crate::client::pipelines_call::PipelinesCall;
    use serde_json::json;

    fn track(value: serde_json::Value) -> Entry {
        Entry::Track(Operation::from_json(value).unwrap())
    }

    #[test]
    fn entries_name_the_person_they_write_to() {
        let person = |entry: Entry| entry.person().map(|key| key.into_owned());
        let identify = |identifiers| {
            track(json!({"type": "person", "action": "identify", "identifiers": identifiers}))
        };
        assert_eq!(person(identify(json!({"id": "42"}))).as_deref(), Some("42"));
        assert_eq!(
            person(identify(json!({"id": 42}))).as_deref(),
            Some("42"),
            "a number as its digits"
        );
        assert_eq!(
            person(identify(json!({"email": "a@example.com", "id": "7"}))).as_deref(),
            Some("7"),
            "the id before the email"
        );
        assert_eq!(
            person(identify(json!({"cio_id": "c1"}))).as_deref(),
            Some("c1")
        );
        let merge = track(json!({"type": "person", "action": "merge",
            "primary": {"email": "p@example.com"}, "secondary": {"id": "s"}}));
        assert_eq!(person(merge).as_deref(), Some("p@example.com"));
        let anonymous = track(json!({"type": "person", "action": "event", "name": "seen",
            "anonymous_id": "anon-1"}));
        assert_eq!(person(anonymous).as_deref(), Some("anon-1"));
        let object = track(json!({"type": "object", "action": "identify",
            "identifiers": {"object_type_id": "1", "object_id": "acme"}}));
        assert_eq!(person(object).as_deref(), Some("object 1 acme"));
        let delivery = track(
            json!({"type": "delivery", "action": "event", "name": "opened",
            "identifiers": {"id": "d1"}}),
        );
        assert_eq!(person(delivery), None);
        let call = |value| Entry::Pipelines(PipelinesCall::from_json(value).unwrap());
        assert_eq!(
            person(call(
                json!({"type": "track", "event": "x", "userId": "u", "anonymousId": "a"})
            ))
            .as_deref(),
            Some("u")
        );
        assert_eq!(
            person(call(
                json!({"type": "track", "event": "x", "anonymousId": "a"})
            ))
            .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn the_lane_whose_packed_lines_began_longest_ago_lags_past_the_limit() {
        let packer = || Packer::Track(crate::client::batch::BatchPacker::new());
        let mut lanes: Vec<Lane<()>> = (0..3).map(|_| Lane::new(packer())).collect();
        assert_eq!(lagging(&lanes, 1_000, 10), None, "nothing packed");
        let mut ledger_ids = crate::import::ledger::tests::chunk_ids();
        lanes[2].packing = Some((ledger_ids.next().unwrap(), 5));
        lanes[0].packing = Some((ledger_ids.next().unwrap(), 8));
        assert_eq!(lagging(&lanes, 15, 10), None, "10 lines after line 5");
        assert_eq!(lagging(&lanes, 16, 10), Some(2));
        lanes[2].packing = None;
        assert_eq!(lagging(&lanes, 16, 10), None);
        assert_eq!(lagging(&lanes, 19, 10), Some(0));
    }

    #[test]
    fn one_person_always_lands_in_one_lane_and_people_spread_over_all() {
        let entry = |id: u64| {
            track(
                json!({"type": "person", "action": "delete", "identifiers": {"id": id.to_string()}}),
            )
        };
        let mut used = [0; 4];
        for id in 0..400 {
            let lane = lane_for(&entry(id), 1, 4);
            assert_eq!(lane, lane_for(&entry(id), 1_000 + id, 4), "person {id}");
            used[lane] += 1;
        }
        assert!(used.iter().all(|&count| count > 50), "{used:?}");
        let delivery = track(
            json!({"type": "delivery", "action": "event", "name": "opened",
            "identifiers": {"id": "d1"}}),
        );
        let lanes: Vec<usize> = (1..=4).map(|line| lane_for(&delivery, line, 4)).collect();
        assert_eq!(lanes, [1, 2, 3, 0], "no person: spread by line");
    }
}
