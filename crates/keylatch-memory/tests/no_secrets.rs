//! No secret reaches a log line, an error or a Debug string, on any path.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keylatch::{AtomicKeyStore, Expiry, KeyCodec, KeySpec, Prefix, RateLimit, Verdict, SECRET_LEN};
use keylatch_memory::MemoryStore;
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The secret part of a key: what must never be shown.
fn secret_of(key: &str) -> String {
    key[key.len() - SECRET_LEN - keylatch::CHECK_LEN..].to_owned()
}

#[tokio::test]
async fn no_path_logs_or_shows_a_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::builder()
        .codec(
            KeyCodec::new(Prefix::new("acme").expect("valid")).with_pepper(b"pepper-42".to_vec()),
        )
        .build();
    let spec = KeySpec::new("tenant")
        .with_quota(3)
        .with_rate_limit(RateLimit::new(1, Duration::from_secs(60), 2))
        .with_expiry(Expiry::In(Duration::from_secs(60)));
    let issued = store.issue(&spec).await.expect("issued");
    let key = issued.key.expose_secret().to_owned();
    let mut secrets = vec![secret_of(&key)];
    let mut shown = vec![
        format!("{issued:?}"),
        format!("{}", issued.key),
        format!("{store:?}"),
    ];

    // Every verify outcome: allowed, rate limited, malformed variants built from the
    // real secret, wrong secret, quota, revoked, plus leases and errors.
    for _ in 0..3 {
        shown.push(format!("{:?}", store.verify(&key, 1).await));
    }
    let mut bad_check = key.clone();
    bad_check.pop();
    for probe in [
        bad_check,
        format!("{key}x"),
        key.replace("acme", "other"),
        format!("{key}{}", "y".repeat(4096)),
    ] {
        shown.push(format!("{:?}", store.verify(&probe, 1).await));
        shown.push(format!(
            "{:?}",
            store.acquire(&probe, 1, Duration::from_secs(1)).await
        ));
    }
    shown.push(format!("{:?}", store.verify(&key, u64::MAX).await));
    let lease = match store.acquire(&key, 0, Duration::from_secs(5)).await {
        Ok(Verdict::Allowed(g)) => g.lease,
        other => panic!("acquire: {other:?}"),
    };
    shown.push(format!("{lease:?}"));
    shown.push(format!(
        "{:?}",
        store.renew(&lease, Duration::from_secs(5)).await
    ));
    let rotated = store
        .rotate(&issued.id, 1, Duration::from_secs(1))
        .await
        .expect("rotated");
    secrets.push(secret_of(rotated.key.expose_secret()));
    shown.push(format!("{rotated:?}"));
    shown.push(format!(
        "{:?}",
        store.rotate(&issued.id, 1, Duration::ZERO).await
    ));
    shown.push(format!("{:?}", store.verify(&key, 1).await));
    shown.push(format!("{:?}", store.release(&lease).await));
    shown.push(format!(
        "{:?}",
        store.revoke(&issued.id, Duration::from_millis(10)).await
    ));
    shown.push(format!(
        "{:?}",
        store.verify(rotated.key.expose_secret(), 1).await
    ));
    shown.push(format!("{:?}", store.inspect(&issued.id).await));

    let log = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8");
    assert!(
        log.contains("keylatch::audit"),
        "audit events were captured"
    );
    assert!(log.contains("revoked"), "the revocation was logged");
    // Refused arguments are audited too, under the key's id.
    assert!(
        log.contains("invalid_argument"),
        "argument errors are audited"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
        for s in &shown {
            assert!(
                !s.contains(secret.as_str()),
                "a secret reached a Debug string"
            );
        }
    }
    assert!(!log.contains("pepper-42") && !shown.iter().any(|s| s.contains("pepper-42")));
    // The store's Debug shows no key records: subjects are the application's data.
    assert!(!format!("{store:?}").contains("tenant"));
}
