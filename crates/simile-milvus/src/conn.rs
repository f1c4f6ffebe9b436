//! Shared clients (one per uri / credentials / database) and error mapping.
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use milvus::v2::error::Error as SdkError;
use milvus::v2::types::{ConnectConfig, RetryConfig, TelemetryConfig};
use milvus::v2::ClientV2;
use simile_index::Error;

use crate::config::{redact_uri, ConnectionSettings};
use crate::runtime::block_on;
use crate::{MilvusError, BACKEND};

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    uri: String,
    user: Option<String>,
    db_name: Option<String>,
    secure: bool,
    /// A fingerprint of the password/token, so other credentials get another client (the
    /// secret itself is not kept in the key).
    secret_fingerprint: u64,
}

static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, ClientV2>>> = OnceLock::new();

fn key_of(s: &ConnectionSettings) -> ClientKey {
    let mut h = DefaultHasher::new();
    s.password.as_ref().map(|p| p.expose()).hash(&mut h);
    s.token.as_ref().map(|t| t.expose()).hash(&mut h);
    ClientKey {
        uri: s.uri.clone(),
        user: s.user.clone(),
        db_name: s.db_name.clone(),
        secure: s.secure,
        secret_fingerprint: h.finish(),
    }
}

/// The SDK connection config: bounded connect time, per-RPC deadline, a small retry policy with
/// backoff, telemetry off unless asked for.
fn connect_config(s: &ConnectionSettings) -> ConnectConfig {
    let retry = RetryConfig::new()
        .max_attempts(s.retry_attempts)
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(Duration::from_secs(2))
        .backoff_multiplier(2.0)
        .max_retry_timeout(s.rpc_timeout + Duration::from_secs(10));
    let mut cfg = ConnectConfig::new()
        .uri(s.uri.clone())
        .secure(s.secure)
        .connect_timeout(s.connect_timeout)
        .rpc_timeout(s.rpc_timeout)
        .retry(retry)
        .telemetry(TelemetryConfig::new().enabled(s.telemetry));
    if let Some(token) = &s.token {
        cfg = cfg.token(token.expose());
    } else if let (Some(user), Some(password)) = (&s.user, &s.password) {
        cfg = cfg.username_password(user, password.expose());
    } else if let Some(user) = &s.user {
        cfg = cfg.username_password(user, "");
    }
    if let Some(db) = &s.db_name {
        cfg = cfg.database(db.clone());
    }
    cfg
}

/// How many shared clients (distinct uri / user / database / credentials) exist in this process.
pub fn shared_client_count() -> usize {
    CLIENTS
        .get()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
        .unwrap_or(0)
}

/// The shared client for these settings, connecting on first use.
pub(crate) fn client_for(s: &ConnectionSettings) -> simile_index::Result<ClientV2> {
    let key = key_of(s);
    let pool = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = pool.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    refused_check(s)?;
    let cfg = connect_config(s);
    tracing::debug!(uri = %redact_uri(&s.uri), user = ?s.user, db = ?s.db_name, "connecting to Milvus");
    let client = block_on(async move { ClientV2::new(&cfg).await })
        .map_err(|e| runtime_error("connect", &s.uri, e))?
        .map_err(|e| map_error("connect", &s.uri, e))?;
    let mut guard = pool.lock().unwrap_or_else(|e| e.into_inner());
    Ok(guard.entry(key).or_insert(client).clone())
}

/// Fails at once, saying so, when nothing accepts TCP connections at the URI's host and port
/// (the SDK would only report a timeout after `connect_timeout`). Any other outcome (connected,
/// timed out, unresolvable, a URI without an explicit port) is left to the SDK's own connect.
fn refused_check(s: &ConnectionSettings) -> simile_index::Result<()> {
    use std::net::{TcpStream, ToSocketAddrs};
    let Some((host, port)) = host_port(&s.uri) else {
        return Ok(());
    };
    let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
        return Ok(());
    };
    let timeout = s.connect_timeout.min(Duration::from_secs(2));
    let mut refused = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused = Some(e),
            // Connected, or a failure the SDK reports better (timeout, unreachable network).
            _ => return Ok(()),
        }
    }
    match refused {
        Some(source) => {
            let location = redact_uri(&s.uri);
            Err(Error::Unavailable {
                backend: BACKEND,
                location: location.clone(),
                source: Box::new(MilvusError::Refused { location, source }),
            })
        }
        None => Ok(()),
    }
}

/// `(host, port)` of a URI with an explicit port: `scheme://[user@]host:port[/path]`,
/// `host:port`, IPv6 as `[::1]:port`.
fn host_port(uri: &str) -> Option<(String, u16)> {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        hostport.rsplit_once(':')?
    };
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

pub(crate) fn runtime_error(op: &'static str, _uri: &str, e: MilvusError) -> Error {
    Error::Backend {
        backend: BACKEND,
        op,
        source: Box::new(e),
    }
}

/// What kind of failure an SDK error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unauthenticated,
    Unavailable,
    CollectionMissing,
    /// The collection exists but is not loaded into query memory.
    NotLoaded,
    Other,
}

pub(crate) fn classify(e: &SdkError) -> Kind {
    // gRPC status codes (tonic::Code discriminants).
    const DEADLINE_EXCEEDED: i32 = 4;
    const PERMISSION_DENIED: i32 = 7;
    const UNAVAILABLE: i32 = 14;
    const UNAUTHENTICATED: i32 = 16;
    match e {
        SdkError::RetryExhausted { source, .. } => classify(source),
        SdkError::Timeout(_) => Kind::Unavailable,
        SdkError::Grpc(status) => match status.code() as i32 {
            UNAUTHENTICATED | PERMISSION_DENIED => Kind::Unauthenticated,
            UNAVAILABLE | DEADLINE_EXCEEDED => Kind::Unavailable,
            _ if is_transport(status.message()) => Kind::Unavailable,
            _ => Kind::Other,
        },
        SdkError::Server(s) => {
            let reason = s.reason().to_ascii_lowercase();
            if s.code() == 1800
                || reason.contains("auth check failure")
                || reason.contains("authenticat")
            {
                Kind::Unauthenticated
            } else if s.code() == 101 || reason.contains("not loaded") {
                Kind::NotLoaded
            } else if reason.contains("not ready")
                || reason.contains("not healthy")
                || reason.contains("service unavailable")
            {
                Kind::Unavailable
            } else if s.code() == 100
                || s.legacy_code() == 4
                || reason.contains("collection not found")
                || reason.contains("can't find collection")
            {
                Kind::CollectionMissing
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    }
}

fn is_transport(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("transport error")
        || m.contains("connection refused")
        || m.contains("connection reset")
}

/// Maps an SDK error to the contract's error. Messages carry the (redacted) URI, never secrets.
pub(crate) fn map_error(op: &'static str, uri: &str, e: SdkError) -> Error {
    let location = redact_uri(uri);
    match classify(&e) {
        Kind::Unauthenticated => Error::Unauthenticated {
            backend: BACKEND,
            location,
            source: Box::new(MilvusError::Sdk(Box::new(e))),
        },
        Kind::Unavailable => Error::Unavailable {
            backend: BACKEND,
            location,
            source: Box::new(MilvusError::Sdk(Box::new(e))),
        },
        Kind::CollectionMissing | Kind::NotLoaded | Kind::Other => Error::Backend {
            backend: BACKEND,
            op,
            source: Box::new(MilvusError::Sdk(Box::new(e))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_of_uris() {
        let hp = |u: &str| host_port(u).map(|(h, p)| format!("{h}:{p}"));
        assert_eq!(
            hp("http://127.0.0.1:19530").as_deref(),
            Some("127.0.0.1:19530")
        );
        assert_eq!(
            hp("https://u:p@milvus.example:443/db").as_deref(),
            Some("milvus.example:443")
        );
        assert_eq!(hp("localhost:19530").as_deref(), Some("localhost:19530"));
        assert_eq!(hp("http://[::1]:19530").as_deref(), Some("::1:19530"));
        assert_eq!(
            hp("http://milvus.example"),
            None,
            "no explicit port: the SDK decides"
        );
        assert_eq!(hp("http://h:notaport"), None);
    }
}
