//! Typed errors: wrong credentials, unreachable server; no secret in any message.
use serde_json::{json, Value};
use simile_index::{BackendFactory, Error, Metric};
use simile_milvus::MilvusFactory;

use crate::common::params;

fn full_chain(e: &dyn std::error::Error) -> String {
    let mut s = format!("{e} | {e:?}");
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(" | {c} | {c:?}"));
        cur = c.source();
    }
    s
}

#[test]
fn wrong_password_is_unauthenticated_and_not_printed() {
    let (_, user, password) = crate::common::server();
    assert!(
        user.is_some() && password.is_some(),
        "the suite runs against a server with authentication on (cargo xtask milvus start --auth)"
    );
    let mut p = params(json!({}));
    p.params
        .insert("password".into(), Value::String("wr0ng-S3cret-pw".into()));
    let err = MilvusFactory.create(&p).unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "got {err:?}");
    let text = full_chain(&err);
    assert!(
        !text.contains("wr0ng-S3cret-pw"),
        "the password leaked: {text}"
    );
}

#[test]
fn unreachable_server_is_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = params(json!({"connect_timeout_s": 2}));
    p.params.insert(
        "uri".into(),
        Value::String(format!("http://127.0.0.1:{port}")),
    );
    let err = MilvusFactory.create(&p).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "got {err:?}");
    assert!(err.to_string().contains(&port.to_string()));
}

/// A port that refuses connections is reported as refused, at once — not as a timeout after the
/// connect timeout.
#[test]
fn refused_connection_is_reported_as_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = params(json!({"connect_timeout_s": 5}));
    p.params.insert(
        "uri".into(),
        Value::String(format!("http://127.0.0.1:{port}")),
    );
    let started = std::time::Instant::now();
    let err = MilvusFactory.create(&p).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Unavailable { .. }), "got {err:?}");
    let text = full_chain(&err);
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "a refused connection needs no timeout: took {took:?}"
    );
}

#[test]
fn invalid_params_are_typed() {
    let p = params(json!({"consistency_level": "Sometimes"}));
    assert!(matches!(
        MilvusFactory.create(&p),
        Err(Error::InvalidParam { .. })
    ));
    let p = params(json!({"metric": "l1"}));
    assert!(matches!(
        MilvusFactory.create(&p),
        Err(Error::InvalidMetric(_))
    ));
    let _ = Metric::ALL;
}
