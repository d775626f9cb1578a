// SPDX-License-Identifier: GPL-2.0

//! Redfish error bodies (DSP0266 §9.6): a `GeneralError` with one
//! `@Message.ExtendedInfo` entry from the Base message registry, with the
//! HTTP status that goes with it. Every refusal of the service is one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The Base registry version the message ids name.
pub const BASE_REGISTRY: &str = "Base.1.18.1";

/// A refusal: status, Base message id, message, and its extras.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RfError {
    pub status: StatusCode,
    pub id: &'static str,
    pub message: String,
    pub args: Vec<String>,
    pub related: Vec<String>,
    /// 405: the methods the resource takes.
    pub allow: Option<String>,
    /// 401 on a request that tried (or could try) HTTP Basic.
    pub basic_challenge: bool,
}

impl RfError {
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
            args: Vec::new(),
            related: Vec::new(),
            allow: None,
            basic_challenge: false,
        }
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// A JSON pointer to the property at fault, e.g. `#/ResetType`.
    pub fn related(mut self, prop: &str) -> Self {
        self.related.push(format!("#/{prop}"));
        self
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The requested resource {path} was not found."),
        )
        .args(&["Resource", path])
    }

    pub fn no_session() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "There is no valid session established with the implementation.",
        );
        e.basic_challenge = true;
        e
    }

    pub fn insufficient_privilege() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "InsufficientPrivilege",
            "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.",
        )
    }

    pub fn method_not_allowed(allow: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
            "The HTTP method is not allowed on this resource.",
        );
        e.allow = Some(allow.to_string());
        e
    }

    pub fn malformed_json(why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            format!("The request body submitted was malformed JSON and could not be parsed by the receiving service: {why}"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("The supplied payload exceeds the maximum size of {limit} bytes supported by the service."),
        )
    }

    pub fn value_not_in_list(prop: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
            format!("The value '{value}' for the property {prop} is not in the list of acceptable values."),
        )
        .args(&[value, prop])
        .related(prop)
    }

    pub fn value_type(prop: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueTypeError",
            format!("The value for the property {prop} is of a different type than the property can accept."),
        )
        .args(&["", prop])
        .related(prop)
    }

    pub fn property_unknown(prop: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyUnknown",
            format!("The property {prop} is not in the list of valid properties for the resource."),
        )
        .args(&[prop])
        .related(prop)
    }

    pub fn property_not_writable(prop: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyNotWritable",
            format!("The property {prop} is a read-only property and cannot be assigned a value."),
        )
        .args(&[prop])
        .related(prop)
    }

    pub fn property_missing(prop: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            format!(
                "The property {prop} is a required property and must be included in the request."
            ),
        )
        .args(&[prop])
        .related(prop)
    }

    pub fn action_parameter_missing(action: &str, param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            format!("The action {action} requires the parameter {param} to be present in the request body."),
        )
        .args(&[action, param])
        .related(param)
    }

    pub fn action_parameter_unknown(action: &str, param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterUnknown",
            format!("The action {action} was submitted with the invalid parameter {param}."),
        )
        .args(&[action, param])
        .related(param)
    }

    pub fn action_not_supported(action: &str, why: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "ActionNotSupported",
            format!("The action {action} is not supported by the resource: {why}"),
        )
        .args(&[action])
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.",
        )
    }

    /// A request asking for an OData version the service does not speak
    /// (DSP0266: 412 Precondition Failed).
    pub fn odata_version_unsupported(value: &str) -> Self {
        let h = format!(
            "OData-Version: {}",
            value.chars().take(64).collect::<String>()
        );
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "HeaderInvalid",
            format!("The header '{h}' is invalid: the service supports OData version 4.0 only."),
        )
        .args(&[&h])
    }

    /// A query parameter starting with `$`: none is implemented (DSP0266:
    /// 501 Not Implemented).
    pub fn query_not_supported(param: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "QueryNotSupported",
            format!("Querying is not supported by the implementation: {param} is not supported."),
        )
    }

    /// The request (a PATCH of annotations only) changes nothing.
    pub fn no_operation() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NoOperation",
            "The request body submitted contain no data to act upon and no changes to the \
             resource took place.",
        )
    }

    /// The request cannot apply to the server's present state.
    pub fn conflict(why: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "OperationNotAllowed", why)
    }

    pub fn internal(why: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", why)
    }

    pub fn body(&self) -> serde_json::Value {
        let mut info = json!({
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": format!("{BASE_REGISTRY}.{}", self.id),
            "Message": self.message,
            "MessageArgs": self.args,
            "Severity": if self.status.is_server_error() { "Critical" } else { "Warning" },
            "MessageSeverity": if self.status.is_server_error() { "Critical" } else { "Warning" },
            "Resolution": "See the message.",
        });
        if !self.related.is_empty() {
            info["RelatedProperties"] = json!(self.related);
        }
        json!({"error": {
            "code": format!("{BASE_REGISTRY}.GeneralError"),
            "message": self.message,
            "@Message.ExtendedInfo": [info],
        }})
    }
}

impl std::fmt::Display for RfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.id, self.message)
    }
}

impl IntoResponse for RfError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        let h = r.headers_mut();
        if let Some(allow) = &self.allow {
            if let Ok(v) = HeaderValue::from_str(allow) {
                h.insert(header::ALLOW, v);
            }
        }
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bmgnic-rme\""),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_redfish_shape() {
        let e = RfError::action_parameter_missing("ComputerSystem.Reset", "ResetType");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let b = e.body();
        assert_eq!(b["error"]["code"], "Base.1.18.1.GeneralError");
        let info = &b["error"]["@Message.ExtendedInfo"][0];
        assert_eq!(info["MessageId"], "Base.1.18.1.ActionParameterMissing");
        assert_eq!(info["RelatedProperties"][0], "#/ResetType");
        let r = RfError::method_not_allowed("GET, HEAD").into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let r = RfError::no_session().into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
