//! App API reads against `cio-emulator`: people by email, a person's profile
//! and segments, segments and their members, and people exports. Each read
//! goes through the App limiter, is retried, and fails with a typed error.

mod unthrottled;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_SITE_ID, Datacenter, Faults};
use cio_ratelimit::{ApiClass, Client, Error, Identifier, Region, error::Credential};
use serde_json::json;

use unthrottled::{Counting, client_for, emulator};

#[test]
fn a_person_identified_through_track_is_found_by_email_through_app() {
    let emu = emulator(Config::default());
    let app = Counting::default();
    let client = client_for(&emu)
        .limiter(ApiClass::App, app.clone())
        .build()
        .unwrap();
    client
        .identify("42", json!({"email": "ada+1@example.com", "plan": "pro"}))
        .unwrap();

    let found = client.people_by_email("ada+1@example.com").unwrap();
    let cio_id = emu.snapshot().people["42"].cio_id.clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id.as_deref(), Some("42"));
    assert_eq!(found[0].cio_id, cio_id);
    assert!(
        client
            .people_by_email("nobody@example.com")
            .unwrap()
            .is_empty()
    );

    let profile = client.person_attributes(found[0].identifier()).unwrap();
    assert_eq!(profile.attributes["plan"], "pro");
    assert_eq!(
        profile.identifiers.email.as_deref(),
        Some("ada+1@example.com")
    );
    assert_eq!(
        client.person_attributes("42").unwrap().attributes["plan"],
        "pro"
    );
    assert_eq!(app.count(), 4, "every read waited for the App limiter");
}

#[test]
fn a_persons_segments_and_a_segments_members_come_from_manual_segment_adds() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    for id in 0..5 {
        client.identify(id.to_string(), json!({})).unwrap();
    }
    let people: Vec<Identifier> = (0..5).map(|id| Identifier::id(id.to_string())).collect();
    client.add_to_segment(7, &people).unwrap();
    client.add_to_segment(8, &people[..1]).unwrap();

    let segments: Vec<u64> = client
        .person_segments("0")
        .unwrap()
        .iter()
        .map(|segment| segment.id)
        .collect();
    assert_eq!(segments, [7, 8]);
    assert_eq!(client.person_segments("1").unwrap()[0].kind, "manual");
    let all = client.segments().unwrap();
    assert_eq!(
        all.iter().map(|segment| segment.id).collect::<Vec<_>>(),
        [7, 8]
    );

    let members: Vec<String> = client
        .segment_members(7)
        .map(|person| person.unwrap().id.unwrap())
        .collect();
    assert_eq!(members, ["0", "1", "2", "3", "4"]);
}

#[test]
fn an_unknown_person_or_segment_is_a_404_and_the_listing_ends() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let missing = client.person_attributes("nobody").unwrap_err();
    assert!(
        matches!(missing, Error::Status { status: 404, .. }),
        "{missing:?}"
    );
    assert!(matches!(
        client.person_segments(Identifier::email("x@y.z")),
        Err(Error::Status { status: 404, .. })
    ));
    let mut members = client.segment_members(99);
    assert!(matches!(
        members.next(),
        Some(Err(Error::Status { status: 404, .. }))
    ));
    assert!(members.next().is_none(), "an error ends the listing");
    assert!(matches!(
        client.export(99),
        Err(Error::Status { status: 404, .. })
    ));
}

#[test]
fn reads_are_retried_after_a_500() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    client.identify("42", json!({"email": "a@b.io"})).unwrap();
    emu.set_faults(Faults::default().error_before_store(1.0));
    let failed = client.people_by_email("a@b.io").unwrap_err();
    assert!(
        matches!(failed, Error::Status { status: 500, .. }),
        "{failed:?}"
    );
    assert_eq!(
        emu.snapshot().status_count(500),
        u64::from(client.retry_policy().max_retries()) + 1,
        "a read is safe to repeat: every retry was sent"
    );
}

#[test]
fn an_app_read_without_an_app_key_is_refused_before_sending() {
    let emu = emulator(Config::default());
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(emu.url())
        .build()
        .unwrap();
    for result in [
        client.people_by_email("a@b.io").map(drop),
        client.person_attributes("1").map(drop),
        client.segments().map(drop),
        client.export(1).map(drop),
        client
            .create_people_export(json!({"segment": {"id": 1}}))
            .map(drop),
    ] {
        assert_eq!(result, Err(Error::MissingCredential(Credential::AppApiKey)));
    }
    assert!(matches!(
        client.segment_members(1).next(),
        Some(Err(Error::MissingCredential(Credential::AppApiKey)))
    ));
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn an_app_only_client_reads_and_a_track_write_on_it_is_a_typed_error() {
    let emu = emulator(Config::default());
    let client = Client::builder_without_credentials()
        .app_key(DEFAULT_APP_KEY)
        .base_url(emu.url())
        .build()
        .unwrap();
    assert!(client.segments().unwrap().is_empty());
    assert_eq!(
        client.add_to_segment(1, &["1".into()]),
        Err(Error::MissingCredential(Credential::TrackApiKey))
    );
}

#[test]
fn the_wrong_datacenter_is_a_wrong_region_error_naming_the_right_one() {
    let emu = emulator(Config::default().wrong_datacenter(Datacenter::Eu));
    let client = client_for(&emu).build().unwrap();
    assert_eq!(
        client.people_by_email("a@b.io"),
        Err(Error::WrongRegion {
            use_region: Region::Eu
        })
    );
    assert_eq!(
        client.add_to_segment(1, &["1".into()]),
        Err(Error::WrongRegion {
            use_region: Region::Eu
        })
    );
    assert_eq!(
        emu.snapshot().status_count(301),
        2,
        "not retried, not followed"
    );
}

#[test]
fn a_people_export_selects_by_segment_and_links_to_its_file() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    for id in ["1", "2"] {
        client
            .identify(id, json!({"email": format!("{id}@example.com")}))
            .unwrap();
    }
    client.add_to_segment(5, &["2".into()]).unwrap();
    let export = client
        .create_people_export(json!({"segment": {"id": 5}}))
        .unwrap();
    assert_eq!(emu.snapshot().exports[0].people, ["2"]);
    let state = client.export(export.id).unwrap();
    assert!(state.is_done(), "{state:?}");
    assert_eq!(state.total, Some(1));
    let url = client.export_download_url(export.id).unwrap();
    assert!(
        url.ends_with(&format!("/_emulator/exports/{}", export.id)),
        "{url}"
    );

    let refused = client.create_people_export(json!([1])).unwrap_err();
    assert!(matches!(refused, Error::Invalid(_)), "{refused:?}");
    let unknown = client
        .create_people_export(json!({"galaxy": 1}))
        .unwrap_err();
    assert!(
        matches!(unknown, Error::Status { status: 400, .. }),
        "{unknown:?}"
    );
}
