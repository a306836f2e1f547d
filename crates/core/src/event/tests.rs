use super::*;

const LIMIT: usize = 1 << 20;

fn sample() -> String {
    r#"{"id":"7F0C2C8E-3A4B-4D6E-9A51-0E8F3C2B1A77","event_name":"run.started","timestamp":1650540069,"project_code":"DEMO","team_member_id":40,"payload":{ "id": 1, "title":"Test run" }}"#.to_owned()
}

#[test]
fn catalogue_has_43_unique_names() {
    assert_eq!(EventName::ALL.len(), 43);
    let mut names: Vec<_> = EventName::ALL.iter().map(|n| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 43);
    for name in EventName::ALL {
        assert_eq!(name.as_str().parse::<EventName>(), Ok(*name));
    }
}

#[test]
fn parses_contract_example_keeping_payload_bytes() {
    let event = Event::parse(sample().as_bytes(), None, LIMIT).expect("valid");
    assert_eq!(event.id, "7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77");
    assert_eq!(event.name, EventName::RunStarted);
    assert_eq!(event.timestamp, 1_650_540_069);
    assert_eq!(event.project_code.as_str(), "DEMO");
    assert_eq!(event.team_member_id, Some(40));
    assert_eq!(event.payload.get(), r#"{ "id": 1, "title":"Test run" }"#);
}

#[test]
fn team_member_may_be_null_or_absent() {
    let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"case.created","timestamp":1,"project_code":"P","team_member_id":null,"payload":{}}"#;
    assert_eq!(
        Event::parse(body.as_bytes(), None, LIMIT).map(|e| e.team_member_id),
        Ok(None)
    );
    let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"case.created","timestamp":1,"project_code":"P","payload":{}}"#;
    assert_eq!(
        Event::parse(body.as_bytes(), None, LIMIT).map(|e| e.team_member_id),
        Ok(None)
    );
}

#[test]
fn id_falls_back_to_message_id() {
    let body = r#"{"event_name":"case.created","timestamp":1,"project_code":"P","payload":{}}"#;
    let event = Event::parse(body.as_bytes(), Some("msg-1"), LIMIT).expect("valid");
    assert_eq!(event.id, "msg-1");
    assert_eq!(
        Event::parse(body.as_bytes(), None, LIMIT).err(),
        Some(Rejection::MissingId)
    );
}

#[test]
fn rejects_each_kind_of_bad_input() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xff\xfe", "not UTF-8"),
        (b"not json", "not a JSON event"),
        (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.exploded","timestamp":1,"project_code":"P","payload":{}}"#, "unknown event_name"),
        (br#"{"id":"nope","event_name":"run.started","timestamp":1,"project_code":"P","payload":{}}"#, "id:"),
        (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":"x","project_code":"P","payload":{}}"#, "timestamp"),
        (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"payload":{}}"#, "project_code"),
        (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"P","payload":[1]}"#, "payload"),
        (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"","payload":{}}"#, "project_code"),
    ];
    for (body, reason) in cases {
        let rejection = Event::parse(body, None, LIMIT).expect_err("must be rejected");
        assert!(
            rejection.to_string().contains(reason),
            "{rejection} should mention {reason}"
        );
    }
}

#[test]
fn rejects_control_characters_that_storage_cannot_hold() {
    let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"P\u0000","payload":{}}"#;
    assert_eq!(
        Event::parse(body.as_bytes(), None, LIMIT).err(),
        Some(Rejection::BadProjectCode(InvalidProjectCode))
    );
    let body = r#"{"event_name":"run.started","timestamp":1,"project_code":"P","payload":{}}"#;
    assert!(matches!(
        Event::parse(body.as_bytes(), Some("a\0b"), LIMIT),
        Err(Rejection::BadId(_))
    ));
}

#[test]
fn a_project_code_is_one_to_max_characters_without_control_characters() {
    for good in ["P", "DEMO", "a b", "проект", &"é".repeat(MAX_PROJECT_CODE)] {
        assert_eq!(
            ProjectCode::parse(good).map(ProjectCode::into_string),
            Ok(good.to_owned())
        );
    }
    let too_long = "é".repeat(MAX_PROJECT_CODE + 1);
    for bad in ["", &too_long, "P\0", "P\n", "\tP", "P\u{7f}", "P\u{85}"] {
        assert_eq!(ProjectCode::parse(bad), Err(InvalidProjectCode), "{bad:?}");
    }
}

#[test]
fn rejects_oversized_body_before_parsing() {
    let body = sample();
    let rejection = Event::parse(body.as_bytes(), None, 10).expect_err("too large");
    assert!(matches!(rejection, Rejection::TooLarge { limit: 10, .. }));
}

#[test]
fn family_is_the_prefix() {
    assert_eq!(EventName::ReviewApprovalStatusChanged.family(), "review");
    assert_eq!(EventName::SharedStepDeleted.family(), "shared_step");
}

#[test]
fn the_test_event_is_delivered_but_never_subscribed_to_nor_published() {
    assert!(TEST_EVENT.parse::<EventName>().is_err());
    assert!(
        !EventName::ALL
            .iter()
            .any(|name| name.as_str() == TEST_EVENT)
    );
    assert_eq!(TEST_EVENT.parse::<DeliveredName>(), Ok(DeliveredName::Test));
    assert_eq!(
        "run.started".parse::<DeliveredName>(),
        Ok(DeliveredName::Event(EventName::RunStarted))
    );
    assert!("run.exploded".parse::<DeliveredName>().is_err());
    let raw = sample().replace("run.started", TEST_EVENT);
    assert!(Event::parse(raw.as_bytes(), None, 1 << 20).is_err());
}
