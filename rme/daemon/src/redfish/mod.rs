// SPDX-License-Identifier: GPL-2.0

//! The Redfish service of the RME (DSP0266): what a cloud's bare-metal
//! provisioning (OpenStack Ironic, through sushy) drives a BMC with. It
//! serves HTTPS only, on its own thread and tokio runtime, so the
//! OpenFlow agent's threads are untouched by it.

pub mod auth;
pub mod errors;
pub mod hostlog;
pub mod media;
pub mod metadata;
pub mod resources;
pub mod tasks;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::platform::Platform;
use crate::rme::Rme;

/// The state every request sees.
pub struct Service {
    platform: Mutex<Box<dyn Platform + Send>>,
    rme: Mutex<Box<dyn Rme + Send>>,
    pub auth: auth::Auth,
    pub uuid: String,
    /// The URL the present image was inserted from (name, URL): the
    /// platform keeps names only.
    last_image: Mutex<Option<(String, String)>>,
    /// Long operations, and the tenancies they ended.
    tasks: Mutex<tasks::Tasks>,
    /// The erase medium's name in the platform's media directory.
    pub erase_media: String,
    /// Held while an image is downloaded to the board.
    pub fetching: tokio::sync::Mutex<()>,
    host_log: Mutex<hostlog::HostLog>,
    /// This server's VTEP (MAC, IP): a tenant restored here sends its
    /// VXLAN traffic from it, whichever server it was checkpointed on.
    pub local_vtep: Option<([u8; 6], std::net::Ipv4Addr)>,
}

impl Service {
    pub fn new(
        platform: Box<dyn Platform + Send>,
        rme: Box<dyn Rme + Send>,
        accounts: Vec<auth::Account>,
    ) -> Self {
        Self {
            platform: Mutex::new(platform),
            rme: Mutex::new(rme),
            auth: auth::Auth::new(accounts),
            uuid: auth::random_uuid(),
            last_image: Mutex::new(None),
            tasks: Mutex::new(tasks::Tasks::default()),
            erase_media: tasks::ERASE_MEDIA.into(),
            fetching: tokio::sync::Mutex::new(()),
            host_log: Mutex::new(hostlog::HostLog::default()),
            local_vtep: None,
        }
    }

    /// Restores tenants behind this server's VTEP `(mac, ip)`.
    pub fn with_local_vtep(mut self, vtep: Option<([u8; 6], std::net::Ipv4Addr)>) -> Self {
        self.local_vtep = vtep;
        self
    }

    /// Keeps the accounts in the file `path` across restarts, seeded
    /// with the ones the service was made with if it does not exist yet
    /// ([`auth::Auth::persistent`]).
    pub fn with_account_store(mut self, path: &std::path::Path) -> Result<Self, String> {
        self.auth = auth::Auth::persistent(self.auth.accounts(), path)?;
        Ok(self)
    }

    /// Erases with the medium `name` of the platform's media directory.
    pub fn with_erase_media(mut self, name: impl Into<String>) -> Self {
        self.erase_media = name.into();
        self
    }

    pub fn tasks(&self) -> MutexGuard<'_, tasks::Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's console lines; taken before the platform when both
    /// are.
    pub fn host_log(&self) -> MutexGuard<'_, hostlog::HostLog> {
        self.host_log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn platform(&self) -> MutexGuard<'_, Box<dyn Platform + Send>> {
        self.platform.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn rme(&self) -> MutexGuard<'_, Box<dyn Rme + Send>> {
        self.rme.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn last_image_url(&self) -> Option<(String, String)> {
        self.last_image
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_last_image_url(&self, name: String, url: String) {
        *self.last_image.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, url));
    }
}

/// Where and how to serve.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub addr: Option<SocketAddr>,
    /// PEM certificate chain and key; a self-signed pair is made if None.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// Where to write the certificate PEM for clients to verify.
    pub cert_out: Option<PathBuf>,
    /// Extra subject alternative names of the self-signed certificate.
    pub sans: Vec<String>,
}

/// The server's TLS configuration: the given PEM files, or a fresh
/// self-signed certificate for localhost, 127.0.0.1 and `sans`.
pub fn tls_config(cfg: &Config) -> Result<rustls::ServerConfig, String> {
    let (chain, key, pem) = match &cfg.cert_key {
        Some((c, k)) => {
            let pem = std::fs::read_to_string(c).map_err(|e| format!("{}: {e}", c.display()))?;
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{}: {e}", c.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(k).map_err(|e| format!("{}: {e}", k.display()))?;
            (chain, key, pem)
        }
        None => {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            names.extend(cfg.sans.iter().cloned());
            let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
            let pem = ck.cert.pem();
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
                .map_err(|e| e.to_string())?;
            (vec![ck.cert.der().clone()], key, pem)
        }
    };
    if let Some(out) = &cfg.cert_out {
        std::fs::write(out, &pem).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(sc)
}

/// The axum router: one fallback handler that dispatches every request.
pub fn router(svc: Arc<Service>) -> axum::Router {
    axum::Router::new().fallback(move |req: axum::extract::Request| {
        let svc = svc.clone();
        async move { resources::handle(svc, req).await }
    })
}

/// Serves HTTPS on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    svc: Arc<Service>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let app = router(svc);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("redfish: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        log::debug!("redfish: TLS from {peer}: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            if let Err(e) = b
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await
            {
                log::debug!("redfish: connection from {peer}: {e}");
            }
        });
    }
}

/// Starts the service on a thread of its own; returns once it listens
/// (or failed to), with the address it listens on.
pub fn spawn(cfg: Config, svc: Arc<Service>) -> Result<SocketAddr, String> {
    let addr = cfg.addr.ok_or("no address to serve on")?;
    let tls = tls_config(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("redfish")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| format!("{addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("redfish".into())
        .spawn(move || rt.block_on(serve(listener, tls, svc)))
        .map_err(|e| e.to_string())?;
    log::info!("redfish: serving https://{local}/redfish/v1/");
    Ok(local)
}
