//! What the emulator answers from what it recorded: App API reads of people, segments and
//! exports; manual segments, push metrics, invites, objects and relationships; and the
//! wrong-datacenter mode.

mod client;

use cio_emulator::{Config, Datacenter, Emulator, Relationship};
use client::Client;
use serde_json::{Value, json};

fn emulator() -> (Emulator, Client) {
    let config = Config::default().track_limit(0).app_limit(0);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    (emulator, client)
}

fn identify(client: &Client, id: &str, attributes: Value) {
    let answer = client.track(
        "PUT",
        &format!("/api/v1/customers/{id}"),
        &attributes.to_string(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[test]
fn a_person_identified_through_track_is_found_by_email_through_app() {
    let (emulator, client) = emulator();
    identify(
        &client,
        "42",
        json!({"email": "Ada@Example.com", "plan": "pro"}),
    );
    identify(&client, "43", json!({"email": "grace@example.com"}));
    let cio_id = emulator.snapshot().people["42"].cio_id.clone();
    assert!(!cio_id.is_empty());

    let found = client.app("GET", "/v1/customers?email=ada%40example.com", "");
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(
        found.json,
        json!({"results": [{"id": "42", "email": "Ada@Example.com", "cio_id": cio_id}]})
    );
    let none = client.app("GET", "/v1/customers?email=nobody%40example.com", "");
    assert_eq!(none.json, json!({"results": []}));
    assert_eq!(client.app("GET", "/v1/customers", "").status, 400);

    for path in [
        "/v1/customers/42/attributes".to_owned(),
        "/v1/customers/ada%40example.com/attributes?id_type=email".to_owned(),
        format!("/v1/customers/{cio_id}/attributes?id_type=cio_id"),
    ] {
        let profile = client.app("GET", &path, "");
        assert_eq!(profile.status, 200, "{path}: {}", profile.text);
        assert_eq!(
            profile.json["customer"]["attributes"]["plan"], "pro",
            "{path}"
        );
        assert_eq!(
            profile.json["customer"]["identifiers"]["cio_id"],
            cio_id.as_str()
        );
    }
    let missing = client.app("GET", "/v1/customers/99/attributes", "");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["errors"][0]["status"], "404");
}

#[test]
fn manual_segments_record_membership_and_page_through_it() {
    let (emulator, client) = emulator();
    for id in ["1", "2", "3"] {
        identify(&client, id, json!({"email": format!("p{id}@example.com")}));
    }
    let add =
        |path: &str, ids: Value| client.track("POST", path, &json!({ "ids": ids }).to_string());
    assert_eq!(
        add(
            "/api/v1/segments/7/add_customers",
            json!(["1", "2", "nobody"])
        )
        .status,
        200
    );
    let by_email = add(
        "/api/v1/segments/7/add_customers?id_type=email",
        json!(["p3@example.com"]),
    );
    assert_eq!(by_email.status, 200);
    let members = emulator.snapshot().segments[&7].members.clone();
    assert_eq!(
        members.into_iter().collect::<Vec<_>>(),
        ["1", "2", "3"],
        "nobody is ignored"
    );

    let first = client.app("GET", "/v1/segments/7/membership?limit=2", "");
    assert_eq!(first.json["identifiers"].as_array().unwrap().len(), 2);
    let next = first.json["next"].as_str().unwrap();
    let second = client.app(
        "GET",
        &format!("/v1/segments/7/membership?limit=2&start={next}"),
        "",
    );
    assert_eq!(second.json["ids"], json!(["3"]));
    assert!(second.json.get("next").is_none(), "{}", second.text);

    let segments = client.app("GET", "/v1/customers/2/segments", "");
    assert_eq!(segments.json["segments"][0]["id"], 7);
    assert_eq!(
        client.app("GET", "/v1/segments", "").json["segments"][0]["type"],
        "manual"
    );

    assert_eq!(
        add("/api/v1/segments/7/remove_customers", json!(["2"])).status,
        200
    );
    assert!(!emulator.snapshot().segments[&7].members.contains("2"));
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let refused = add("/api/v1/segments/7/add_customers", json!(too_many));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        client.app("GET", "/v1/segments/8/membership", "").status,
        404
    );
}

#[test]
fn exports_select_people_by_filter_and_link_to_a_file() {
    let (_emulator, client) = emulator();
    identify(
        &client,
        "1",
        json!({"email": "a@example.com", "plan": "pro"}),
    );
    identify(
        &client,
        "2",
        json!({"email": "b@example.com", "plan": "free"}),
    );
    let filters =
        json!({"filters": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}});
    let created = client.app("POST", "/v1/exports/customers", &filters.to_string());
    assert_eq!(created.status, 200, "{}", created.text);
    let export = &created.json["export"];
    assert_eq!(
        (export["status"].as_str(), export["total"].as_u64()),
        (Some("done"), Some(1))
    );
    let id = export["id"].as_u64().unwrap();
    assert_eq!(
        client.app("GET", &format!("/v1/exports/{id}"), "").json["export"]["id"],
        id
    );
    let url = client
        .app("GET", &format!("/v1/exports/{id}/download"), "")
        .json["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        file.starts_with("cio_id,id,email\n") && file.contains(",1,a@example.com"),
        "{file}"
    );
    assert!(!file.contains("b@example.com"), "{file}");

    let bad = json!({"filters": {"nonsense": 1}});
    assert_eq!(
        client
            .app("POST", "/v1/exports/customers", &bad.to_string())
            .status,
        400
    );
    assert_eq!(client.app("GET", "/v1/exports/99", "").status, 404);
}

#[test]
fn push_metrics_and_invites_are_recorded() {
    let (emulator, client) = emulator();
    let metric =
        json!({"delivery_id": "d1", "event": "opened", "device_id": "tok", "timestamp": 5});
    assert_eq!(
        client
            .track("POST", "/api/v1/push/events", &metric.to_string())
            .status,
        200
    );
    let bad = json!({"delivery_id": "d1", "event": "liked"});
    assert_eq!(
        client
            .track("POST", "/api/v1/push/events", &bad.to_string())
            .status,
        400
    );
    let invite = json!({"name": "invited", "data": {"recipient": "grace@example.com"}});
    assert_eq!(
        client
            .track("POST", "/api/v1/events", &invite.to_string())
            .status,
        200
    );
    let no_one = json!({"name": "invited", "data": {}});
    assert_eq!(
        client
            .track("POST", "/api/v1/events", &no_one.to_string())
            .status,
        400
    );

    let snapshot = emulator.snapshot();
    let recorded = &snapshot.delivery_metrics[0];
    assert_eq!(
        (
            recorded.delivery_id.as_str(),
            recorded.metric.as_str(),
            recorded.device_id.as_deref()
        ),
        ("d1", "opened", Some("tok"))
    );
    assert_eq!(snapshot.events[0].data["recipient"], "grace@example.com");
    assert_eq!(snapshot.events[0].anonymous_id, None);
}

#[test]
fn v2_objects_and_relationships_are_recorded() {
    let (emulator, client) = emulator();
    let batch = json!({"batch": [
        {"type": "object", "action": "identify",
         "identifiers": {"object_type_id": "1", "object_id": "acme"},
         "attributes": {"name": "Acme"},
         "cio_relationships": [{"identifiers": {"id": "42"}}]},
        {"type": "person", "action": "add_relationships", "identifiers": {"email": "a@b.io"},
         "cio_relationships": [{"identifiers": {"object_type_id": 1, "object_id": "acme"}}]},
        {"type": "delivery", "action": "event", "identifiers": {"id": "d9"}, "name": "delivered"}
    ]});
    let answer = client.track("POST", "/api/v2/batch", &batch.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.objects["1/acme"].attributes["name"], "Acme");
    let relationship = |person: &str| Relationship {
        person: person.into(),
        object: "1/acme".into(),
    };
    assert!(snapshot.relationships.contains(&relationship("42")));
    assert!(snapshot.relationships.contains(&relationship("a@b.io")));
    assert_eq!(snapshot.delivery_metrics[0].delivery_id, "d9");

    let delete = json!({"type": "object", "action": "delete",
        "identifiers": {"object_type_id": "1", "object_id": "acme"}});
    assert_eq!(
        client
            .track("POST", "/api/v2/entity", &delete.to_string())
            .status,
        200
    );
    let snapshot = emulator.snapshot();
    assert!(snapshot.objects.is_empty() && snapshot.relationships.is_empty());
}

#[test]
fn the_wrong_datacenter_answers_301_with_the_right_host_and_records_nothing() {
    let emulator = Emulator::start(Config::default().wrong_datacenter(Datacenter::Eu)).unwrap();
    let client = Client::new(&emulator);
    let track = client.track("PUT", "/api/v1/customers/42", "{}");
    assert_eq!(track.status, 301);
    assert_eq!(track.json["meta"]["error"], "wrong datacenter");
    let location = |path: &str, app: bool| {
        let answer = if app {
            client.app("GET", path, "")
        } else {
            client.track("POST", path, "{}")
        };
        assert_eq!(answer.status, 301);
        answer.location.unwrap()
    };
    assert_eq!(
        location("/api/v2/entity", false),
        "https://track-eu.customer.io/api/v2/entity"
    );
    assert_eq!(
        location("/v1/segments", true),
        "https://api-eu.customer.io/v1/segments"
    );
    let snapshot = emulator.snapshot();
    assert!(snapshot.people.is_empty());
    assert_eq!(snapshot.status_count(301), 3);
}
