// SPDX-License-Identifier: GPL-2.0

//! The service through its dispatcher, over MemoryPlatform and
//! MemoryRme: auth, errors, the reset mapping, ETag/If-Match.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use serde_json::{json, Value};

use super::resources::{handle, if_match_ok, image_name, reset_plan};
use super::{auth, Service};
use crate::platform::{MemoryPlatform, Power, Request as PReq};
use crate::rme::MemoryRme;

fn svc() -> Arc<Service> {
    let acc =
        auth::parse_accounts("admin:Administrator:a\nop:Operator:o\nro:ReadOnly:r\n").unwrap();
    Arc::new(Service::new(
        Box::new(MemoryPlatform::new(1 << 30)),
        Box::new(MemoryRme::new(4)),
        acc,
    ))
}

async fn call(
    s: &Arc<Service>,
    m: Method,
    path: &str,
    user: Option<&str>,
    body: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut b = Request::builder().method(m).uri(path);
    if let Some(u) = user {
        let e = base64::engine::general_purpose::STANDARD.encode(u);
        b = b.header(header::AUTHORIZATION, format!("Basic {e}"));
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let r = handle(s.clone(), b.body(Body::from(body.to_string())).unwrap()).await;
    let st = r.status();
    let h = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (st, h, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

#[tokio::test]
async fn auth_and_errors() {
    let s = svc();
    let (st, h, v) = call(&s, Method::GET, "/redfish/v1/", None, "", &[]).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["OData-Version"], "4.0");
    assert_eq!(
        v["Links"]["Sessions"]["@odata.id"],
        "/redfish/v1/SessionService/Sessions"
    );
    let (st, h, _) = call(&s, Method::GET, "/redfish/v1/Systems", None, "", &[]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key(header::WWW_AUTHENTICATE));
    let (st, _, _) = call(
        &s,
        Method::GET,
        "/redfish/v1/Systems",
        Some("ro:x"),
        "",
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, v) = call(
        &s,
        Method::GET,
        "/redfish/v1/Systems",
        Some("ro:r"),
        "",
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Members@odata.count"], 1);
    let (st, _, v) = call(&s, Method::GET, "/redfish/v1/Nope", Some("ro:r"), "", &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        v["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.18.1.ResourceNotFound"
    );
    let (st, h, _) = call(
        &s,
        Method::PUT,
        "/redfish/v1/Systems/1",
        Some("ro:r"),
        "",
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, HEAD, PATCH");
    let body = r#"{"ResetType":"On"}"#;
    let (st, _, _) = call(&s, Method::POST, RESET, Some("ro:r"), body, &[]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = call(&s, Method::POST, RESET, Some("op:o"), "{bad", &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.18.1.MalformedJSON"
    );
    let (st, _, v) = call(&s, Method::POST, RESET, Some("op:o"), "{}", &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.18.1.ActionParameterMissing"
    );
    let (st, _, _) = call(
        &s,
        Method::POST,
        RESET,
        Some("op:o"),
        r#"{"ResetType":"Nmi"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(super::resources::BODY_LIMIT));
    let (st, _, _) = call(&s, Method::POST, RESET, Some("op:o"), &big, &[]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn reset_drives_the_platform() {
    let s = svc();
    let power = |s: &Arc<Service>| s.platform().status().unwrap().power;
    for (reset, want) in [
        ("On", Power::On),
        ("On", Power::On),
        ("Pause", Power::Paused),
        ("ForceRestart", Power::Paused),
        ("Resume", Power::On),
        ("GracefulShutdown", Power::Off),
        ("PowerCycle", Power::On),
        ("ForceOff", Power::Off),
        ("ForceOff", Power::Off),
    ] {
        let body = json!({ "ResetType": reset }).to_string();
        let (st, _, _) = call(&s, Method::POST, RESET, Some("op:o"), &body, &[]).await;
        assert_eq!((reset, st), (reset, StatusCode::NO_CONTENT));
        assert_eq!((reset, power(&s)), (reset, want));
    }
    let (st, _, _) = call(
        &s,
        Method::POST,
        RESET,
        Some("op:o"),
        r#"{"ResetType":"Pause"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(reset_plan("On", Power::Off).unwrap(), Some(PReq::PowerOn));
    assert_eq!(
        reset_plan("PowerCycle", Power::Off).unwrap(),
        Some(PReq::PowerOn)
    );
    assert!(reset_plan("ForceRestart", Power::Off).is_err());
}

#[tokio::test]
async fn etag_and_if_match() {
    let s = svc();
    let (_, h, _) = call(
        &s,
        Method::GET,
        "/redfish/v1/Systems/1",
        Some("op:o"),
        "",
        &[],
    )
    .await;
    let tag = h[header::ETAG].to_str().unwrap().to_string();
    let patch = r#"{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once"}}"#;
    let (st, _, _) = call(
        &s,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        Some("op:o"),
        patch,
        &[("If-Match", "\"nope\"")],
    )
    .await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    let weak = format!("W/{tag}");
    let (st, h2, v) = call(
        &s,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        Some("op:o"),
        patch,
        &[("If-Match", &weak)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_ne!(h2[header::ETAG].to_str().unwrap(), tag);
    let bad = r#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#;
    let (st, _, _) = call(
        &s,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        Some("op:o"),
        bad,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = call(
        &s,
        Method::PATCH,
        "/redfish/v1/Systems/1",
        Some("ro:r"),
        patch,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let mut hm = axum::http::HeaderMap::new();
    assert!(if_match_ok(&hm, "\"a\""));
    hm.insert(header::IF_MATCH, "*".parse().unwrap());
    assert!(if_match_ok(&hm, "\"a\""));
    assert_eq!(image_name("http://x/a/b.iso?t=1").as_deref(), Some("b.iso"));
    assert_eq!(image_name("http://x/a/"), None);
}

#[tokio::test]
async fn sessions() {
    let s = svc();
    let (st, _, _) = call(
        &s,
        Method::POST,
        "/redfish/v1/SessionService/Sessions",
        None,
        r#"{"UserName":"ro","Password":"bad"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, h, _) = call(
        &s,
        Method::POST,
        "/redfish/v1/SessionService/Sessions",
        None,
        r#"{"UserName":"ro","Password":"r"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let tok = h["X-Auth-Token"].to_str().unwrap().to_string();
    let loc = h[header::LOCATION].to_str().unwrap().to_string();
    let (st, _, _) = call(
        &s,
        Method::GET,
        "/redfish/v1/Systems/1",
        None,
        "",
        &[("X-Auth-Token", &tok)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = call(
        &s,
        Method::DELETE,
        &loc,
        None,
        "",
        &[("X-Auth-Token", &tok)],
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = call(
        &s,
        Method::GET,
        "/redfish/v1/Systems/1",
        None,
        "",
        &[("X-Auth-Token", &tok)],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
