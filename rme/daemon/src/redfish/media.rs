// SPDX-License-Identifier: GPL-2.0

//! Images for the virtual CD, taken as a BMC takes them: an `Image` that
//! is an `http://` URL is downloaded by the RME over its management
//! network and stored on the board (the platform's `media-store`), whose
//! virtual CD then serves it to the server. Ironic serves its deploy ISOs
//! so, from the conductor. A bare file name is a medium the provider put
//! in the board's media directory (the erase medium, say).
//!
//! hyper's HTTP/1.1 client does the transfer; the body goes to the board
//! in pieces of [`MEDIA_CHUNK`] bytes as it arrives, hashed on the way.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Request, StatusCode, Uri};
use base64::Engine;
use bmgnic_wire::platform::{
    remote_media_name_ok, MEDIA_CHUNK, REMOTE_MEDIA_MAX, REMOTE_MEDIA_PREFIX,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::errors::RfError;
use super::Service;
use crate::platform::{Platform as _, PlatformError};

/// How long the image server may take to accept, and then between two
/// pieces of the body.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a whole download may take: a server that sends a byte every
/// few seconds meets [`READ_TIMEOUT`] for ever. The largest image
/// ([`REMOTE_MEDIA_MAX`]) at 100 Mbit/s takes under 6 minutes.
pub const DOWNLOAD_TIME: Duration = Duration::from_secs(30 * 60);

/// What an `Image` names.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// A medium in the board's media directory.
    Provider(String),
    /// An image to download, and the name it is stored under.
    Http { uri: Uri, stored: String },
}

/// Reads an `Image` value: a bare file name or an `http://` URL; any
/// other scheme is not one the service takes.
pub fn source(image: &str) -> Result<Source, RfError> {
    if !image.contains("://") {
        if image.is_empty() || image.contains('/') || image.starts_with('.') {
            return Err(RfError::value_not_in_list("Image", image));
        }
        return Ok(Source::Provider(image.to_string()));
    }
    let uri: Uri = image
        .parse()
        .map_err(|_| RfError::value_not_in_list("Image", image))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(RfError::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterNotSupported",
            format!("Image {image}: the service downloads images over HTTP (http://) only."),
        )
        .related("Image"));
    }
    let stored = stored_name(uri.path());
    Ok(Source::Http { uri, stored })
}

/// The name an image from `path` is stored under on the board: the
/// remote prefix and the path's last segment, reduced to the characters
/// a stored name may hold.
pub fn stored_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or("");
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    while name.starts_with('.') {
        name.remove(0);
    }
    if name.is_empty() {
        name = "image".into();
    }
    let name = format!("{REMOTE_MEDIA_PREFIX}{name}");
    debug_assert!(remote_media_name_ok(&name));
    name
}

/// What a download stored.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: u64,
    pub sha256: String,
}

fn unreachable(uri: &Uri, why: impl std::fmt::Display) -> RfError {
    RfError::new(
        StatusCode::BAD_REQUEST,
        "CouldNotEstablishConnection",
        format!("The service failed to establish a connection with the URI {uri}: {why}."),
    )
    .args(&[&uri.to_string()])
    .related("Image")
}

/// Stores one piece on the board.
async fn store(
    svc: &Arc<Service>,
    name: &str,
    offset: u64,
    data: Vec<u8>,
    last: bool,
) -> Result<(), RfError> {
    let s = svc.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        s.platform()
            .media_store(&name, offset, &data, last)
            .map(drop)
    })
    .await
    .map_err(|e| RfError::internal(format!("platform task: {e}")))?
    .map_err(|e| match e {
        PlatformError::Refused(why) => {
            RfError::conflict(format!("the board refused the image: {why}"))
        }
        e => RfError::internal(format!("storing the image on the board: {e}")),
    })
}

/// The connection's task, ended however the transfer ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Downloads `uri` (with HTTP Basic `credentials` if given) and stores it
/// on the board as `name`, within `deadline` for the body.
pub async fn fetch(
    svc: &Arc<Service>,
    uri: &Uri,
    name: &str,
    credentials: Option<(&str, &str)>,
    deadline: Duration,
) -> Result<Fetched, RfError> {
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| unreachable(uri, "no answer"))?
    .map_err(|e| unreachable(uri, e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(uri, e))?;
    let _connection = AbortOnDrop(tokio::spawn(conn).abort_handle());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let mut req = Request::get(path).header(header::HOST, authority).header(
        header::USER_AGENT,
        concat!("bmgnic-rmed/", env!("CARGO_PKG_VERSION")),
    );
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {token}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(uri, e))?;
    let resp = tokio::time::timeout(READ_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| unreachable(uri, "no answer"))?
        .map_err(|e| unreachable(uri, e))?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(RfError::new(
                StatusCode::BAD_REQUEST,
                "ResourceAtUriUnauthorized",
                format!("While accessing the resource at {uri}, the service received an authorization error: {}.", resp.status()),
            )
            .args(&[&uri.to_string(), resp.status().as_str()])
            .related("Image"));
        }
        other => return Err(unreachable(uri, format!("the server answered {other}"))),
    }
    let stored = store_body(svc, uri, name, resp.into_body(), deadline).await;
    if stored.is_err() {
        // What arrived of the image is of no use: the board drops it.
        let s = svc.clone();
        let name = name.to_string();
        let dropped =
            tokio::task::spawn_blocking(move || s.platform().media_discard(&name).map(drop)).await;
        let why = match dropped {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            log::warn!("redfish: {uri}: the board kept the partial image: {why}");
        }
    }
    stored
}

/// Streams `body` to the board as image `name`, hashing it on the way,
/// all of it within `deadline`. Only the reads wait on the clock: a store
/// on the board is never cut off half done.
async fn store_body(
    svc: &Arc<Service>,
    uri: &Uri,
    name: &str,
    mut body: hyper::body::Incoming,
    deadline: Duration,
) -> Result<Fetched, RfError> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut piece = Vec::with_capacity(MEDIA_CHUNK);
    let mut offset = 0u64;
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let stalled = tokio::time::Instant::now() + READ_TIMEOUT;
        let frame = tokio::time::timeout_at(stalled.min(end), body.frame())
            .await
            .map_err(|_| {
                if stalled < end {
                    unreachable(uri, "the transfer stalled")
                } else {
                    unreachable(
                        uri,
                        format!("the transfer took longer than {} s", deadline.as_secs()),
                    )
                }
            })?;
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(unreachable(uri, e)),
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        if offset + (piece.len() + data.len()) as u64 > REMOTE_MEDIA_MAX {
            return Err(RfError::new(
                StatusCode::BAD_REQUEST,
                "ActionParameterValueError",
                format!("The image at {uri} is larger than {REMOTE_MEDIA_MAX} bytes."),
            )
            .related("Image"));
        }
        digest.update(&data);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let take = rest.len().min(MEDIA_CHUNK - piece.len());
            piece.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if piece.len() == MEDIA_CHUNK {
                let full = std::mem::replace(&mut piece, Vec::with_capacity(MEDIA_CHUNK));
                let n = full.len() as u64;
                store(svc, name, offset, full, false).await?;
                offset += n;
            }
        }
    }
    let bytes = offset + piece.len() as u64;
    if bytes == 0 {
        return Err(RfError::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterValueError",
            format!("The image at {uri} is empty."),
        )
        .related("Image"));
    }
    store(svc, name, offset, piece, true).await?;
    let sha256 = digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Fetched { bytes, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_names_or_http_urls() {
        assert_eq!(
            source("erase.iso").unwrap(),
            Source::Provider("erase.iso".into())
        );
        for bad in ["", "../x.iso", "a/b.iso", ".hidden"] {
            assert!(source(bad).is_err(), "{bad}");
        }
        let Source::Http { uri, stored } =
            source("http://10.0.2.100:8080/ironic/boot-1.iso?x=1").unwrap()
        else {
            panic!("not http");
        };
        assert_eq!(uri.port_u16(), Some(8080));
        assert_eq!(stored, "remote-boot-1.iso");
        for unsupported in ["https://x/a.iso", "nfs://x/a.iso", "cifs://x/a.iso"] {
            let e = source(unsupported).unwrap_err();
            assert_eq!(e.id, "ActionParameterNotSupported", "{unsupported}");
        }
        assert_eq!(stored_name("/a/"), "remote-image");
        assert_eq!(stored_name("/..iso"), "remote-iso");
        assert_eq!(stored_name("/x y.iso"), "remote-x_y.iso");
    }
}
