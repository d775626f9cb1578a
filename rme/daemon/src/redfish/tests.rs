// SPDX-License-Identifier: GPL-2.0

//! The service through its dispatcher, over MemoryPlatform and
//! MemoryRme: auth, errors, the reset mapping, ETag/If-Match.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use serde_json::{json, Value};

use super::resources::{describedby, dollar_param, handle, if_match_ok, reset_plan, BOOT_TARGETS};
use super::{auth, Service};
use crate::platform::{
    Answer, BootTarget, MemoryPlatform, Platform, PlatformError, Power, Request as PReq,
};
use crate::rme::MemoryRme;

fn svc() -> Arc<Service> {
    svc_on(MemoryPlatform::new(1 << 30))
}

/// The service on `board`.
fn svc_on(board: MemoryPlatform) -> Arc<Service> {
    let acc =
        auth::parse_accounts("admin:Administrator:a\nop:Operator:o\nro:ReadOnly:r\n").unwrap();
    Arc::new(Service::new(
        Box::new(board),
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

/// A request as `user` (basic auth), without other headers.
async fn as_user(
    s: &Arc<Service>,
    m: Method,
    path: &str,
    user: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    call(s, m, path, Some(user), body, &[]).await
}

const SYS: &str = "/redfish/v1/Systems/1";
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
    let (st, _, _) = as_user(&s, Method::GET, "/redfish/v1/Systems", "ro:x", "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, v) = as_user(&s, Method::GET, "/redfish/v1/Systems", "ro:r", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Members@odata.count"], 1);
    let (st, _, v) = as_user(&s, Method::GET, "/redfish/v1/Nope", "ro:r", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(message_id(&v), "Base.1.18.1.ResourceNotFound");
    let (st, h, _) = as_user(&s, Method::PUT, SYS, "ro:r", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, HEAD, PATCH");
    let body = r#"{"ResetType":"On"}"#;
    let (st, _, _) = as_user(&s, Method::POST, RESET, "ro:r", body).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = as_user(&s, Method::POST, RESET, "op:o", "{bad").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(message_id(&v), "Base.1.18.1.MalformedJSON");
    let (st, _, v) = as_user(&s, Method::POST, RESET, "op:o", "{}").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(message_id(&v), "Base.1.18.1.ActionParameterMissing");
    let (st, _, _) = as_user(&s, Method::POST, RESET, "op:o", r#"{"ResetType":"Nmi"}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(super::resources::BODY_LIMIT));
    let (st, _, _) = as_user(&s, Method::POST, RESET, "op:o", &big).await;
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
        let (st, _, _) = as_user(&s, Method::POST, RESET, "op:o", &body).await;
        assert_eq!((reset, st), (reset, StatusCode::NO_CONTENT));
        assert_eq!((reset, power(&s)), (reset, want));
    }
    let (st, _, _) = as_user(&s, Method::POST, RESET, "op:o", r#"{"ResetType":"Pause"}"#).await;
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
    let (_, h, _) = as_user(&s, Method::GET, SYS, "op:o", "").await;
    let tag = h[header::ETAG].to_str().unwrap().to_string();
    let patch = r#"{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once"}}"#;
    let (st, _, _) = call(
        &s,
        Method::PATCH,
        SYS,
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
        SYS,
        Some("op:o"),
        patch,
        &[("If-Match", &weak)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_ne!(h2[header::ETAG].to_str().unwrap(), tag);
    let bad = r#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#;
    let (st, _, _) = as_user(&s, Method::PATCH, SYS, "op:o", bad).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = as_user(&s, Method::PATCH, SYS, "ro:r", patch).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // The payload carries the ETag; a GET naming it gets 304, no body.
    let (_, h, v) = as_user(&s, Method::GET, SYS, "op:o", "").await;
    let tag = h[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(v["@odata.etag"], tag.as_str());
    let (st, h, v) = call(
        &s,
        Method::GET,
        SYS,
        Some("op:o"),
        "",
        &[("If-None-Match", &tag)],
    )
    .await;
    assert_eq!((st, &v), (StatusCode::NOT_MODIFIED, &Value::Null));
    assert_eq!(h[header::ETAG].to_str().unwrap(), tag);
    let (st, _, _) = call(
        &s,
        Method::GET,
        SYS,
        Some("op:o"),
        "",
        &[("If-None-Match", "\"old\"")],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Annotations are not written; a body of nothing else is NoOperation.
    let (st, _, v) = as_user(&s, Method::PATCH, SYS, "op:o", r#"{"@odata.id": "/x"}"#).await;
    assert_eq!(
        (st, message_id(&v)),
        (StatusCode::BAD_REQUEST, "Base.1.18.1.NoOperation")
    );
    let echo =
        format!(r#"{{"@odata.etag": {tag:?}, "Boot": {{"BootSourceOverrideTarget": "Hdd"}}}}"#);
    let (st, _, v) = as_user(&s, Method::PATCH, SYS, "op:o", &echo).await;
    assert_eq!(
        (st, &v["Boot"]["BootSourceOverrideTarget"]),
        (StatusCode::OK, &json!("Hdd"))
    );
    let mut hm = axum::http::HeaderMap::new();
    assert!(if_match_ok(&hm, "\"a\""));
    hm.insert(header::IF_MATCH, "*".parse().unwrap());
    assert!(if_match_ok(&hm, "\"a\""));
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
    let (st, _, _) = call(&s, Method::GET, SYS, None, "", &[("X-Auth-Token", &tok)]).await;
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
    let (st, _, _) = call(&s, Method::GET, SYS, None, "", &[("X-Auth-Token", &tok)]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

fn message_id(v: &Value) -> &str {
    v["error"]["@Message.ExtendedInfo"][0]["MessageId"]
        .as_str()
        .unwrap_or("")
}

const SYSTEM: &str = "/redfish/v1/Systems/1";

#[tokio::test]
async fn odata_version_header() {
    let s = svc();
    let (st, _, _) = call(
        &s,
        Method::GET,
        "/redfish/v1/",
        None,
        "",
        &[("OData-Version", "4.0")],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    for bad in ["4.1", "4.01", "3.0", ""] {
        let (st, h, v) = call(
            &s,
            Method::GET,
            "/redfish/v1/",
            None,
            "",
            &[("OData-Version", bad)],
        )
        .await;
        assert_eq!((bad, st), (bad, StatusCode::PRECONDITION_FAILED));
        assert_eq!(message_id(&v), "Base.1.18.1.HeaderInvalid");
        assert_eq!(h["OData-Version"], "4.0");
    }
    // A protected resource still asks for credentials first.
    let (st, _, _) = call(
        &s,
        Method::GET,
        SYSTEM,
        None,
        "",
        &[("OData-Version", "4.1")],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn query_parameters() {
    let s = svc();
    for q in [
        "$rpvunknown",
        "$expand=*",
        "$select=Name",
        "$filter=Name%20eq%20x",
        "$top=1",
        "$skip=1",
        "$levels=2",
        "%24top=1",
        "only&$expand=.",
    ] {
        let uri = format!("/redfish/v1/Systems?{q}");
        let (st, _, v) = as_user(&s, Method::GET, &uri, "ro:r", "").await;
        assert_eq!((q, st), (q, StatusCode::NOT_IMPLEMENTED));
        assert_eq!(message_id(&v), "Base.1.18.1.QueryNotSupported");
    }
    let (st, _, _) = call(&s, Method::GET, "/redfish/v1/?$rpvunknown", None, "", &[]).await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED);
    for q in ["rpvunknown", "only", "excerpt", "a=$b", "x=1&y", ""] {
        let uri = format!("/redfish/v1/Systems?{q}");
        let (st, _, v) = as_user(&s, Method::GET, &uri, "ro:r", "").await;
        assert_eq!((q, st), (q, StatusCode::OK));
        assert_eq!(v["Members@odata.count"], 1);
    }
    assert_eq!(dollar_param(None), None);
    assert_eq!(dollar_param(Some("a=1&$top=2")).as_deref(), Some("$top"));
    assert_eq!(dollar_param(Some("%24Top")).as_deref(), Some("%24Top"));
    assert_eq!(dollar_param(Some("%2")), None);
    assert_eq!(dollar_param(Some("\u{e9}&b")), None);
    // The service root says nothing is supported, consistently.
    let (_, _, root) = call(&s, Method::GET, "/redfish/v1/", None, "", &[]).await;
    let f = &root["ProtocolFeaturesSupported"];
    for k in [
        "ExcerptQuery",
        "FilterQuery",
        "OnlyMemberQuery",
        "SelectQuery",
        "TopSkipQuery",
    ] {
        assert_eq!(f[k], false, "{k}");
    }
    for k in ["ExpandAll", "Levels", "Links", "NoLinks"] {
        assert_eq!(f["ExpandQuery"][k], false, "{k}");
    }
}

/// Every resource that GETs: (path, Allow).
const GETTABLE: [(&str, &str); 27] = [
    ("/redfish", "GET, HEAD"),
    ("/redfish/v1/", "GET, HEAD"),
    ("/redfish/v1/odata", "GET, HEAD"),
    ("/redfish/v1/$metadata", "GET, HEAD"),
    ("/redfish/v1/Systems", "GET, HEAD"),
    (SYSTEM, "GET, HEAD, PATCH"),
    ("/redfish/v1/Systems/1/EthernetInterfaces", "GET, HEAD"),
    ("/redfish/v1/Systems/1/EthernetInterfaces/1", "GET, HEAD"),
    ("/redfish/v1/Systems/1/Storage", "GET, HEAD"),
    ("/redfish/v1/Systems/1/Storage/1", "GET, HEAD"),
    ("/redfish/v1/Systems/1/Storage/1/Drives/1", "GET, HEAD"),
    ("/redfish/v1/Chassis", "GET, HEAD"),
    ("/redfish/v1/Chassis/1", "GET, HEAD"),
    ("/redfish/v1/Managers", "GET, HEAD"),
    ("/redfish/v1/Managers/1", "GET, HEAD"),
    ("/redfish/v1/Managers/1/VirtualMedia", "GET, HEAD"),
    ("/redfish/v1/Managers/1/VirtualMedia/Cd", "GET, HEAD"),
    ("/redfish/v1/SessionService", "GET, HEAD, PATCH"),
    ("/redfish/v1/SessionService/Sessions", "GET, HEAD, POST"),
    ("/redfish/v1/AccountService", "GET, HEAD"),
    ("/redfish/v1/AccountService/Accounts", "GET, HEAD, POST"),
    ("/redfish/v1/Systems/1/LogServices", "GET, HEAD"),
    ("/redfish/v1/Systems/1/LogServices/HostLogger", "GET, HEAD"),
    (
        "/redfish/v1/Systems/1/LogServices/HostLogger/Entries",
        "GET, HEAD",
    ),
    (
        "/redfish/v1/AccountService/Accounts/1",
        "GET, HEAD, PATCH, DELETE",
    ),
    ("/redfish/v1/AccountService/Roles/Operator", "GET, HEAD"),
    ("/redfish/v1/TaskService/Tasks", "GET, HEAD"),
];

#[tokio::test]
async fn allow_and_head_everywhere() {
    let s = svc();
    for (path, allow) in GETTABLE {
        let (st, g, v) = as_user(&s, Method::GET, path, "admin:a", "").await;
        assert_eq!((path, st), (path, StatusCode::OK));
        assert_eq!((path, g[header::ALLOW].to_str().unwrap()), (path, allow));
        let req = Request::builder()
            .method(Method::HEAD)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("admin:a")
                ),
            )
            .body(Body::empty())
            .unwrap();
        let r = handle(s.clone(), req).await;
        assert_eq!((path, r.status()), (path, StatusCode::OK));
        let h = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert!(body.is_empty(), "{path}: HEAD has a body");
        // The length of the body a GET gets.
        let len = match &v {
            Value::Null => None,
            v => Some(v.to_string().len().to_string()),
        };
        if let Some(len) = len {
            assert_eq!(h[header::CONTENT_LENGTH].to_str().unwrap(), len, "{path}");
        }
        for k in [header::ALLOW, header::CONTENT_TYPE, header::LINK] {
            assert_eq!((path, k.as_str(), h.get(&k)), (path, k.as_str(), g.get(&k)));
        }
        // The ETag of a live resource may differ between two reads
        // only if it changed; these do not change between the two.
        assert_eq!(h.get(header::ETAG), g.get(header::ETAG), "{path}");
    }
    // Actions take POST only; a 405 says so.
    let (st, h, _) = as_user(&s, Method::GET, RESET, "ro:r", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "POST");
    // A successful action says what the resource takes too.
    let (st, h, _) = as_user(&s, Method::POST, RESET, "op:o", r#"{"ResetType":"On"}"#).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(h[header::ALLOW], "POST");
}

#[tokio::test]
async fn link_describedby() {
    let s = svc();
    for (path, schema) in [
        ("/redfish/v1/", "ServiceRoot.v1_17_0"),
        (SYSTEM, "ComputerSystem.v1_20_0"),
        ("/redfish/v1/Systems", "ComputerSystemCollection"),
        ("/redfish/v1/SessionService/Sessions", "SessionCollection"),
        ("/redfish/v1/AccountService", "AccountService.v1_15_0"),
        (
            "/redfish/v1/AccountService/Accounts",
            "ManagerAccountCollection",
        ),
    ] {
        let (_, h, v) = as_user(&s, Method::GET, path, "admin:a", "").await;
        let want = format!("<https://redfish.dmtf.org/schemas/v1/{schema}.json>; rel=describedby");
        assert_eq!(
            (path, h[header::LINK].to_str().unwrap()),
            (path, want.as_str())
        );
        // The version in the Link is the @odata.type's.
        let t = v["@odata.type"].as_str().unwrap();
        assert!(t.starts_with(&format!("#{schema}.")), "{path}: {t}");
    }
    // Nothing to describe: no Link.
    let (_, h, _) = call(&s, Method::GET, "/redfish/v1/odata", None, "", &[]).await;
    assert!(!h.contains_key(header::LINK));
    assert_eq!(describedby(&json!({"@odata.type": "#A.v1_0_0"})), None);
    assert_eq!(describedby(&json!({"@odata.type": "A.A"})), None);
    assert_eq!(describedby(&json!({"@odata.type": "#A>.A"})), None);
    assert_eq!(describedby(&json!({"@odata.type": 1})), None);
    assert_eq!(
        describedby(&json!({"@odata.type": "#Role.v1_3_1.Role"})).as_deref(),
        Some("<https://redfish.dmtf.org/schemas/v1/Role.v1_3_1.json>; rel=describedby")
    );
}

#[tokio::test]
async fn post_to_sessions_members() {
    let s = svc();
    let members = "/redfish/v1/SessionService/Sessions/Members";
    let (st, h, v) = call(
        &s,
        Method::POST,
        members,
        None,
        r#"{"UserName":"ro","Password":"r"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let loc = h[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(v["@odata.id"], loc.as_str());
    assert!(loc.starts_with("/redfish/v1/SessionService/Sessions/"));
    let tok = h["X-Auth-Token"].to_str().unwrap().to_string();
    let (st, _, _) = call(&s, Method::GET, &loc, None, "", &[("X-Auth-Token", &tok)]).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = call(
        &s,
        Method::POST,
        members,
        None,
        r#"{"UserName":"ro","Password":"x"}"#,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, h, _) = as_user(&s, Method::GET, members, "ro:r", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "POST");
}

#[tokio::test]
async fn boot_mode_and_targets() {
    let s = svc();
    let (_, _, v) = as_user(&s, Method::GET, SYSTEM, "op:o", "").await;
    let boot = &v["Boot"];
    assert_eq!(boot["BootSourceOverrideMode"], "Legacy");
    assert_eq!(
        boot["BootSourceOverrideMode@Redfish.AllowableValues"],
        json!(["Legacy"])
    );
    assert_eq!(
        boot["BootSourceOverrideTarget@Redfish.AllowableValues"],
        json!(BOOT_TARGETS)
    );
    let patch = |body: &'static str| {
        let s = s.clone();
        async move { as_user(&s, Method::PATCH, SYSTEM, "op:o", body).await }
    };
    // Legacy alone: a no-op.
    let (st, _, v) = patch(r#"{"Boot":{"BootSourceOverrideMode":"Legacy"}}"#).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideMode"], "Legacy");
    assert_eq!(v["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    // With a target, as sushy sends it.
    let (st, _, v) = patch(
        r#"{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Continuous","BootSourceOverrideMode":"Legacy"}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Cd");
    let (st, _, v) = patch(r#"{"Boot":{"BootSourceOverrideMode":"Legacy"}}"#).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_eq!(v["Boot"]["BootSourceOverrideEnabled"], "Continuous");
    // UEFI is refused, and nothing of the request applies.
    let (st, _, v) =
        patch(r#"{"Boot":{"BootSourceOverrideTarget":"Hdd","BootSourceOverrideMode":"UEFI"}}"#)
            .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(message_id(&v), "Base.1.18.1.PropertyValueNotInList");
    assert_eq!(
        v["error"]["@Message.ExtendedInfo"][0]["RelatedProperties"][0],
        "#/Boot/BootSourceOverrideMode"
    );
    let (st, _, v) = patch(r#"{"Boot":{"BootSourceOverrideMode":1}}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(message_id(&v), "Base.1.18.1.PropertyValueTypeError");
    // Pxe, through the board's provisioning port.
    let (st, _, v) =
        patch(r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#)
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(s.platform().status().unwrap().boot.target, BootTarget::Pxe);
    // A board without one: Pxe is not offered, and refused before the
    // platform.
    let mut board = MemoryPlatform::new(1 << 30);
    board.state.netboot.present = false;
    board.boot(BootTarget::Cd, false).unwrap();
    let s = svc_on(board);
    let (_, _, v) = as_user(&s, Method::GET, SYSTEM, "op:o", "").await;
    assert_eq!(
        v["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"],
        json!(["None", "Hdd", "Cd"])
    );
    let (st, _, v) = as_user(
        &s,
        Method::PATCH,
        SYSTEM,
        "op:o",
        r#"{"Boot":{"BootSourceOverrideTarget":"Pxe"}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(message_id(&v), "Base.1.18.1.PropertyValueNotInList");
    let st = s.platform().status().unwrap();
    assert_eq!(st.boot.target, BootTarget::Cd);
    assert!(!st.boot.once);
    // The platform refuses pxe too.
    assert!(s.platform().boot(BootTarget::Pxe, true).is_err());
}

const CHECKPOINT: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Checkpoint";
const RESTORE: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Restore";

/// Runs an action that answers with a task; returns the finished task.
async fn run_task(s: &Arc<Service>, path: &str, body: &str) -> Value {
    let (st, h, _) = as_user(s, Method::POST, path, "admin:a", body).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{path} {body}");
    let monitor = h[header::LOCATION].to_str().unwrap().to_string();
    for _ in 0..1000 {
        let (st, _, task) = as_user(s, Method::GET, &monitor, "admin:a", "").await;
        if st == StatusCode::OK {
            return task;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{path}: the task did not end");
}

#[tokio::test]
async fn checkpoint_and_restore_move_the_nic_configuration() {
    use crate::rme::{
        IdentityConfig, MissPolicy, NicConfig, PolicyConfig, TenantConfig, VtepConfig,
    };
    let s = svc();
    let config = NicConfig {
        identity: IdentityConfig {
            mac: [2, 0, 0, 0, 0, 9],
            mtu_cap: 1500,
            ipv4: vec!["10.10.1.1".parse().unwrap()],
            ipv6: vec![],
        },
        tenant: Some(TenantConfig {
            vni: 5001,
            local_mac: [2, 0, 0, 0, 0, 1],
            local_ip: "192.168.0.1".parse().unwrap(),
        }),
        vteps: vec![VtepConfig {
            index: 1,
            mac: [2, 0, 0, 0, 0, 2],
            ip: "192.168.0.2".parse().unwrap(),
        }],
        meters: vec![],
        flows: vec![],
        policy: Some(PolicyConfig {
            miss: MissPolicy::Drop,
        }),
    };
    s.rme().nic_config_apply(&config).unwrap();

    // Bad requests are refused before any task starts.
    for body in [
        "{}",
        r#"{"CheckpointName": "../x"}"#,
        r#"{"CheckpointName": "c1", "Other": 1}"#,
    ] {
        let (st, _, _) = as_user(&s, Method::POST, CHECKPOINT, "admin:a", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    }
    let (st, _, _) = as_user(
        &s,
        Method::POST,
        CHECKPOINT,
        "ro:r",
        r#"{"CheckpointName": "c1"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // An off server has nothing to checkpoint.
    let task = run_task(&s, CHECKPOINT, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    assert_eq!(s.rme().nic_config().unwrap(), config);

    s.platform().power_on().unwrap();
    let task = run_task(&s, CHECKPOINT, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Completed", "{task}");
    assert_eq!(task["Oem"]["Bmgnic"]["Checkpoint"]["Name"], "c1");
    assert_eq!(s.platform().status().unwrap().power, Power::Off);
    // The NIC forgot the tenant.
    assert_eq!(s.rme().dev_get().unwrap().guest_mac, [0; 6]);

    // A name that exists is not overwritten; a missing one not restored.
    s.platform().power_on().unwrap();
    let task = run_task(&s, CHECKPOINT, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    s.platform().force_off().unwrap();
    let task = run_task(&s, RESTORE, r#"{"CheckpointName": "nope"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    assert_eq!(s.rme().dev_get().unwrap().guest_mac, [0; 6]);

    let task = run_task(&s, RESTORE, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Completed", "{task}");
    assert_eq!(s.rme().nic_config().unwrap(), config);
    assert_eq!(s.platform().status().unwrap().power, Power::On);
    let (_, _, mgr) = as_user(&s, Method::GET, "/redfish/v1/Managers/1", "ro:r", "").await;
    assert_eq!(mgr["Oem"]["Bmgnic"]["CurrentTenancy"]["RestoredFrom"], "c1");

    // A checkpoint that cannot be stored leaves the tenant here: the NIC
    // as it was, no tenancy ended, the bill going on.
    let ended = s.tasks().tenancies.len();
    let task = run_task(&s, CHECKPOINT, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    assert!(
        task["Messages"].to_string().contains("was put back"),
        "{task}"
    );
    assert_eq!(s.rme().nic_config().unwrap(), config);
    assert_eq!(s.tasks().tenancies.len(), ended);
    assert_eq!(s.tasks().carried.as_ref().map(|c| c.0.as_str()), Some("c1"));

    // A NIC with a tenant takes no restore.
    s.platform().force_off().unwrap();
    let task = run_task(&s, RESTORE, r#"{"CheckpointName": "c1"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    let messages = task["Messages"].to_string();
    assert!(messages.contains("the NIC has a tenant"), "{messages}");
}

const DEPLOY: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Deploy";
const ERASE: &str = "/redfish/v1/Systems/1/Storage/1/Drives/1/Actions/Drive.SecureErase";

/// An image server on the loopback: `path` answers `image`, `/private/`
/// paths want HTTP Basic `user:secret`, `/cut/` ones send `image` and
/// hang up with as much again promised, `/slow/` ones send it in ten
/// parts 50 ms apart, `/drip/` ones a byte every 20 ms; anything else is
/// 404. Returns its `http://` base.
fn image_server(path: &'static str, image: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let target = head.first().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
            let authorized = head.iter().any(|h| {
                h.to_ascii_lowercase().starts_with("authorization: basic ")
                    && h.trim_end()
                        .ends_with(&base64::engine::general_purpose::STANDARD.encode("user:secret"))
            });
            let (status, body, promised) = match target {
                t if t.starts_with("/private/") && !authorized => ("401 Unauthorized", &[][..], 0),
                t if t == path || t == format!("/private{path}") => {
                    ("200 OK", &image[..], image.len())
                }
                t if t == format!("/cut{path}") => ("200 OK", &image[..], 2 * image.len()),
                t if t == format!("/slow{path}") || t == format!("/drip{path}") => {
                    ("200 OK", &image[..], image.len())
                }
                _ => ("404 Not Found", &[][..], 0),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {promised}\r\nConnection: close\r\n\r\n"
            );
            let (part, pause) = if target.starts_with("/slow/") {
                (body.len().div_ceil(10).max(1), 50)
            } else if target.starts_with("/drip/") {
                (1, 20)
            } else {
                (body.len().max(1), 0)
            };
            let body = body.to_vec();
            std::thread::spawn(move || {
                for piece in body.chunks(part) {
                    std::thread::sleep(std::time::Duration::from_millis(pause));
                    if conn.write_all(piece).is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

/// A service whose server runs the cleanup system's jobs at once: the
/// install and erase media print their reports and power off.
fn svc_with_media() -> Arc<Service> {
    let acc =
        auth::parse_accounts("admin:Administrator:a\nop:Operator:o\nro:ReadOnly:r\n").unwrap();
    let mut platform = MemoryPlatform::new(1 << 30);
    platform.images = ["install.iso", "erase.iso"].map(String::from).to_vec();
    let report = |json: &str| format!("bmgnic-cleanup: result {json}\r\n");
    // The install medium is downloaded, and stored under the remote name.
    platform.media_console.insert(
        "remote-install.iso".into(),
        report(r#"{"job":"install","ok":true,"bytes":4096,"sha256":"ab12","seconds":1.5}"#),
    );
    platform.media_console.insert(
        "erase.iso".into(),
        report(r#"{"job":"erase","ok":true,"method":"nvme-format-ses1","nonzero_blocks":0}"#),
    );
    Arc::new(Service::new(
        Box::new(platform),
        Box::new(MemoryRme::new(4)),
        acc,
    ))
}

#[tokio::test]
async fn deploy_installs_the_image_and_boots_the_disk() {
    let s = svc_with_media();
    let base = image_server("/bmgnic/install.iso", vec![0x5a; 100_000]);
    let url = format!("{base}/bmgnic/install.iso");
    let missing = format!(r#"{{"Image": "{base}/missing.iso"}}"#);
    let body = format!(r#"{{"Image": "{url}"}}"#);

    // Bad requests and the wrong role are refused before any task.
    for (user, body, want) in [
        ("admin:a", "{}", StatusCode::BAD_REQUEST),
        (
            "admin:a",
            r#"{"Image": "x/install.iso", "Other": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("admin:a", missing.as_str(), StatusCode::BAD_REQUEST),
        (
            "admin:a",
            r#"{"Image": "missing.iso"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin:a",
            r#"{"Image": "https://x/install.iso"}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("admin:a", r#"{"Image": 7}"#, StatusCode::BAD_REQUEST),
        ("ro:r", body.as_str(), StatusCode::FORBIDDEN),
    ] {
        let (st, _, v) = as_user(&s, Method::POST, DEPLOY, user, body).await;
        assert_eq!(st, want, "{body}: {v}");
    }
    assert!(s.tasks().ids().is_empty());
    // Never over a running system.
    s.platform().power_on().unwrap();
    let (st, _, v) = as_user(&s, Method::POST, DEPLOY, "op:o", &body).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    s.platform().force_off().unwrap();

    let task = run_task(&s, DEPLOY, &body).await;
    assert_eq!(task["TaskState"], "Completed", "{task}");
    let install = &task["Oem"]["Bmgnic"]["Install"];
    assert_eq!(install["Image"], url);
    assert_eq!(install["Bytes"], 4096);
    assert_eq!(install["Sha256"], "ab12");
    assert!(install["BootSeconds"].is_number(), "{task}");
    // The server runs its disk, the medium is out, no override is left.
    let st = s.platform().status().unwrap();
    assert_eq!(st.power, Power::On);
    assert!(!st.media.inserted);
    assert_eq!(st.boot.target, BootTarget::None);
    let (_, _, system) = as_user(&s, Method::GET, SYS, "ro:r", "").await;
    assert_eq!(
        system["Actions"]["Oem"]["#BmgnicComputerSystem.Deploy"]["target"],
        DEPLOY
    );

    // The erase runs the same system from its own medium.
    let task = run_task(&s, ERASE, "{}").await;
    assert_eq!(task["TaskState"], "Completed", "{task}");
    assert_eq!(task["Oem"]["Bmgnic"]["Erase"]["nonzero_blocks"], 0);
    let st = s.platform().status().unwrap();
    assert_eq!((st.power, st.media.inserted), (Power::Off, false));

    // A medium that runs another job is no install.
    // (The provider's erase medium, by its name.)
    let task = run_task(&s, DEPLOY, r#"{"Image": "erase.iso"}"#).await;
    assert_eq!(task["TaskState"], "Exception");
    assert!(
        task["Messages"]
            .to_string()
            .contains("erase.iso ran job erase, not install"),
        "{task}"
    );
    assert_eq!(s.platform().status().unwrap().power, Power::Off);
}

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

#[tokio::test]
async fn accounts_are_managed_through_the_account_service() {
    let s = svc();
    let new = r#"{"UserName": "ironic", "Password": "conductor-1", "RoleId": "Operator"}"#;
    // Only ConfigureUsers makes accounts.
    let (st, _, _) = as_user(&s, Method::POST, ACCOUNTS, "op:o", new).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    for (body, want) in [
        (
            r#"{"UserName": "x", "Password": "long-enough"}"#,
            "Base.1.18.1.PropertyMissing",
        ),
        (
            r#"{"UserName": "x", "Password": "short", "RoleId": "Operator"}"#,
            "Base.1.18.1.PropertyValueFormatError",
        ),
        (
            r#"{"UserName": "x", "Password": "long-enough", "RoleId": "Root"}"#,
            "Base.1.18.1.PropertyValueNotInList",
        ),
        (
            r#"{"UserName": "a:b", "Password": "long-enough", "RoleId": "Operator"}"#,
            "Base.1.18.1.PropertyValueNotInList",
        ),
        (
            r#"{"UserName": "x", "Password": "long-enough", "RoleId": "Operator", "Age": 1}"#,
            "Base.1.18.1.PropertyUnknown",
        ),
    ] {
        let (st, _, v) = as_user(&s, Method::POST, ACCOUNTS, "admin:a", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(message_id(&v), want, "{body}: {v}");
    }
    let (st, h, v) = as_user(&s, Method::POST, ACCOUNTS, "admin:a", new).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let uri = h[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(uri, format!("{ACCOUNTS}/4"));
    assert_eq!(
        (v["UserName"].as_str(), v["RoleId"].as_str()),
        (Some("ironic"), Some("Operator"))
    );
    let (st, _, _) = as_user(&s, Method::POST, ACCOUNTS, "admin:a", new).await;
    assert_eq!(st, StatusCode::CONFLICT);
    // The new account works at once, with its role's privileges.
    let (st, _, _) = as_user(
        &s,
        Method::POST,
        RESET,
        "ironic:conductor-1",
        r#"{"ResetType":"On"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // Its own password is ConfigureSelf; its role is not.
    let (st, _, _) = as_user(
        &s,
        Method::PATCH,
        &uri,
        "ironic:conductor-1",
        r#"{"RoleId": "Administrator"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = as_user(
        &s,
        Method::PATCH,
        &uri,
        "ro:r",
        r#"{"Password": "taken-over"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = as_user(
        &s,
        Method::PATCH,
        &uri,
        "ironic:conductor-1",
        r#"{"Password": "conductor-2"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, _) = as_user(&s, Method::GET, SYS, "ironic:conductor-1", "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = as_user(&s, Method::GET, SYS, "ironic:conductor-2", "").await;
    assert_eq!(st, StatusCode::OK);
    // Read-only properties are refused as such.
    let (st, _, v) = as_user(&s, Method::PATCH, &uri, "admin:a", r#"{"Locked": true}"#).await;
    assert_eq!(
        (st, message_id(&v)),
        (StatusCode::BAD_REQUEST, "Base.1.18.1.PropertyNotWritable")
    );

    // Disabled, it cannot log in; the last Administrator cannot go.
    let (st, _, _) = as_user(&s, Method::PATCH, &uri, "admin:a", r#"{"Enabled": false}"#).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = as_user(&s, Method::GET, SYS, "ironic:conductor-2", "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let admin = format!("{ACCOUNTS}/1");
    let (st, _, _) = as_user(
        &s,
        Method::PATCH,
        &admin,
        "admin:a",
        r#"{"RoleId": "ReadOnly"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _, _) = as_user(&s, Method::DELETE, &admin, "admin:a", "").await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _, _) = as_user(&s, Method::DELETE, &uri, "op:o", "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = as_user(&s, Method::DELETE, &uri, "admin:a", "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = as_user(&s, Method::GET, &uri, "admin:a", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

const CD_INSERT: &str = "/redfish/v1/Managers/1/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia";

#[tokio::test]
async fn insert_media_downloads_http_images_to_the_board() {
    let s = svc_with_media();
    let base = image_server("/boot.iso", vec![7; 70_000]);
    let cd = "/redfish/v1/Managers/1/VirtualMedia/Cd";
    for (body, want) in [
        (
            format!(r#"{{"Image": "{base}/nope.iso"}}"#),
            "Base.1.18.1.CouldNotEstablishConnection",
        ),
        (
            format!(r#"{{"Image": "{base}/private/boot.iso"}}"#),
            "Base.1.18.1.ResourceAtUriUnauthorized",
        ),
        (
            format!(
                r#"{{"Image": "{base}/private/boot.iso", "UserName": "user", "Password": "bad"}}"#
            ),
            "Base.1.18.1.ResourceAtUriUnauthorized",
        ),
        (
            format!(r#"{{"Image": "{base}/boot.iso", "TransferProtocolType": "NFS"}}"#),
            "Base.1.18.1.PropertyValueNotInList",
        ),
        (
            r#"{"Image": "http://127.0.0.1:1/boot.iso"}"#.to_string(),
            "Base.1.18.1.CouldNotEstablishConnection",
        ),
    ] {
        let (st, _, v) = as_user(&s, Method::POST, CD_INSERT, "admin:a", &body).await;
        assert_eq!(
            (st, message_id(&v)),
            (StatusCode::BAD_REQUEST, want),
            "{body}: {v}"
        );
        assert!(!s.platform().status().unwrap().media.inserted);
    }
    let url = format!("{base}/private/boot.iso");
    let body = format!(
        r#"{{"Image": "{url}", "UserName": "user", "Password": "secret", "TransferProtocolType": "HTTP"}}"#
    );
    let (st, _, v) = as_user(&s, Method::POST, CD_INSERT, "admin:a", &body).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let st = s.platform().status().unwrap();
    assert_eq!(st.media.image.as_deref(), Some("remote-boot.iso"));
    let (_, _, v) = as_user(&s, Method::GET, cd, "ro:r", "").await;
    assert_eq!(v["Image"], url.as_str());
    // A second image waits for the first to come out.
    let again = format!(r#"{{"Image": "{base}/boot.iso"}}"#);
    let (st, _, _) = as_user(&s, Method::POST, CD_INSERT, "admin:a", &again).await;
    assert_eq!(st, StatusCode::CONFLICT);
}

/// A platform that keeps a list of the requests it was asked.
struct Recording(MemoryPlatform, Arc<std::sync::Mutex<Vec<PReq>>>);

impl Platform for Recording {
    fn call(&mut self, req: PReq) -> Result<Answer, PlatformError> {
        self.1.lock().unwrap().push(req.clone());
        self.0.call(req)
    }
}

#[tokio::test]
async fn a_download_that_breaks_off_leaves_nothing_on_the_board() {
    let (s, asked) = recorded_svc();
    // More than one piece arrives before the server hangs up.
    let base = image_server("/boot.iso", vec![7; 100_000]);
    let body = format!(r#"{{"Image": "{base}/cut/boot.iso"}}"#);
    let (st, _, v) = as_user(&s, Method::POST, CD_INSERT, "admin:a", &body).await;
    assert_eq!(
        (st, message_id(&v)),
        (
            StatusCode::BAD_REQUEST,
            "Base.1.18.1.CouldNotEstablishConnection"
        ),
        "{v}"
    );
    let asked = asked.lock().unwrap().clone();
    let stores = asked
        .iter()
        .filter(|r| matches!(r, PReq::MediaStore { name, .. } if name == "remote-boot.iso"))
        .count();
    assert!(stores >= 3, "{asked:?}");
    assert_eq!(
        asked.last(),
        Some(&PReq::MediaDiscard {
            name: "remote-boot.iso".into()
        })
    );
    assert!(!s.platform().status().unwrap().media.inserted);
}

/// A service on a [`Recording`] platform, and the list it keeps.
fn recorded_svc() -> (Arc<Service>, Arc<std::sync::Mutex<Vec<PReq>>>) {
    let acc =
        auth::parse_accounts("admin:Administrator:a\nop:Operator:o\nro:ReadOnly:r\n").unwrap();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let platform = Recording(MemoryPlatform::new(1 << 30), asked.clone());
    let s = Arc::new(Service::new(
        Box::new(platform),
        Box::new(MemoryRme::new(4)),
        acc,
    ));
    (s, asked)
}

#[tokio::test]
async fn a_download_past_its_deadline_is_dropped_from_the_board() {
    let (s, asked) = recorded_svc();
    // A byte every 20 ms never stalls for READ_TIMEOUT.
    let base = image_server("/boot.iso", vec![7; 100_000]);
    let uri: axum::http::Uri = format!("{base}/drip/boot.iso").parse().unwrap();
    let started = std::time::Instant::now();
    let e = super::media::fetch(
        &s,
        &uri,
        "remote-boot.iso",
        None,
        std::time::Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        e.message.contains("the transfer took longer than 0 s"),
        "{}",
        e.message
    );
    assert_eq!(
        asked.lock().unwrap().last(),
        Some(&PReq::MediaDiscard {
            name: "remote-boot.iso".into()
        })
    );
}

#[tokio::test]
async fn an_insert_whose_client_hangs_up_is_done_all_the_same() {
    let (s, asked) = recorded_svc();
    let base = image_server("/boot.iso", vec![7; 100_000]);
    let body = format!(r#"{{"Image": "{base}/slow/boot.iso"}}"#);
    // The client gives up 100 ms into the half-second transfer.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        as_user(&s, Method::POST, CD_INSERT, "admin:a", &body),
    )
    .await;
    assert!(gave_up.is_err(), "the transfer was not under way");
    let mut inserted = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let st = s.platform().status().unwrap();
        if st.media.inserted {
            assert_eq!(st.media.image.as_deref(), Some("remote-boot.iso"));
            inserted = true;
            break;
        }
    }
    let asked = asked.lock().unwrap().clone();
    assert!(inserted, "{asked:?}");
    assert!(!asked.iter().any(|r| matches!(r, PReq::MediaDiscard { .. })));
}

#[tokio::test]
async fn the_console_is_a_log_service() {
    let acc =
        auth::parse_accounts("admin:Administrator:a\nop:Operator:o\nro:ReadOnly:r\n").unwrap();
    let mut platform = MemoryPlatform::new(1 << 30);
    platform.console = b"SeaBIOS\r\nbmgnic-cleanup: result {\"ok\":true}\r\nlogin: ".to_vec();
    let s = Arc::new(Service::new(
        Box::new(platform),
        Box::new(MemoryRme::new(4)),
        acc,
    ));
    let (_, _, system) = as_user(&s, Method::GET, SYS, "ro:r", "").await;
    let services = system["LogServices"]["@odata.id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _, v) = as_user(&s, Method::GET, &services, "ro:r", "").await;
    assert_eq!(st, StatusCode::OK);
    let logger = v["Members"][0]["@odata.id"].as_str().unwrap().to_string();
    // The tenant's output is for those who run the server.
    let (st, _, _) = as_user(&s, Method::GET, &logger, "ro:r", "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = as_user(&s, Method::GET, &logger, "op:o", "").await;
    assert_eq!(st, StatusCode::OK);
    let entries = v["Entries"]["@odata.id"].as_str().unwrap().to_string();
    let (_, _, v) = as_user(&s, Method::GET, &entries, "op:o", "").await;
    // Complete lines only: the prompt waits for its end.
    assert_eq!(v["Members@odata.count"], 2, "{v}");
    let second = v["Members"][1]["@odata.id"].as_str().unwrap().to_string();
    assert!(second.ends_with("/Entries/2"), "{second}");
    let (st, _, e) = as_user(&s, Method::GET, &second, "op:o", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(e["Message"], "bmgnic-cleanup: result {\"ok\":true}");
    assert_eq!(e["EntryType"], "Oem");
    let (st, _, _) = as_user(&s, Method::GET, &format!("{entries}/3"), "op:o", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn guest_port_link_follows_the_fabric_and_the_quarantine() {
    for (fabric_link, quarantined, link, enabled) in [
        (true, false, "LinkUp", true),
        (false, false, "LinkDown", true),
        (true, true, "LinkDown", false),
    ] {
        let mut rme = MemoryRme::new(4);
        rme.dev.fabric_link = fabric_link;
        rme.dev.quarantined = quarantined;
        let s = Arc::new(Service::new(
            Box::new(MemoryPlatform::new(1 << 30)),
            Box::new(rme),
            auth::parse_accounts("ro:ReadOnly:r\n").unwrap(),
        ));
        let path = "/redfish/v1/Systems/1/EthernetInterfaces/1";
        let (st, _, v) = as_user(&s, Method::GET, path, "ro:r", "").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            v["LinkStatus"], link,
            "fabric link {fabric_link}, quarantined {quarantined}"
        );
        assert_eq!(v["InterfaceEnabled"], enabled);
    }
}
