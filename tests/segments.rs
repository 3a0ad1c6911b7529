//! Manual segments against `cio-emulator`: adds and removes split at
//! Customer.io's per-request limit, and a segment's members paged on demand.

mod unthrottled;

use cio_emulator::Config;
use cio_ratelimit::{Client, Error, Identifier, Operation, client::MAX_SEGMENT_IDS_PER_REQUEST};
use serde_json::json;

use unthrottled::{client_for, emulator};

/// Identifies `people` in a few batch requests.
fn identify_all(client: &Client, people: &[Identifier]) {
    let operations: Vec<Operation> = people
        .iter()
        .map(|person| Operation::identify(person.clone(), json!({})).unwrap())
        .collect();
    client.send_operations(&operations).unwrap();
}

#[test]
fn segment_adds_are_split_at_customerios_limit_and_by_identifier_kind() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let mut people: Vec<Identifier> = (0..MAX_SEGMENT_IDS_PER_REQUEST + 1)
        .map(|id| Identifier::id(id.to_string()))
        .collect();
    people.push(Identifier::email("ada@example.com"));
    identify_all(&client, &people);
    let before = emu.snapshot().requests;

    client.add_to_segment(4, &people).unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.requests - before, 3, "1000 ids, 1 id, 1 email");
    assert_eq!(snapshot.segments[&4].members.len(), people.len());

    client
        .remove_from_segment(
            4,
            &[Identifier::id("0"), Identifier::email("ada@example.com")],
        )
        .unwrap();
    let members = &emu.snapshot().segments[&4].members;
    assert!(!members.contains("0") && !members.contains("ada@example.com"));
    assert_eq!(members.len(), people.len() - 2);

    let bad = [Identifier::id("1"), Identifier::id("")];
    assert!(matches!(
        client.add_to_segment(4, &bad),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        emu.snapshot().requests - before,
        5,
        "nothing sent for bad input"
    );
}

#[test]
fn segment_members_fetch_the_next_page_only_when_asked() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let people: Vec<Identifier> = (0..1500)
        .map(|id| Identifier::id(format!("p{id:04}")))
        .collect();
    identify_all(&client, &people);
    client.add_to_segment(3, &people).unwrap();

    let app_requests = || emu.snapshot().classes["app"].requests;
    let mut members = client.segment_members(3);
    assert_eq!(app_requests(), 0, "nothing is sent before the first next()");
    assert_eq!(
        members.next().unwrap().unwrap().id.as_deref(),
        Some("p0000")
    );
    assert_eq!(app_requests(), 1);
    let rest: Vec<_> = members.by_ref().take(999).collect();
    assert_eq!(rest.len(), 999);
    assert_eq!(app_requests(), 1, "the first page held 1000 people");
    assert_eq!(members.count(), 500);
    assert_eq!(app_requests(), 2);
}
