//! Every verify, acquire, revoke and rotate emits an audit event, argument errors
//! included, and an argument error still sends nothing to Redis.
//!
//! A test binary of its own: it installs the process-wide subscriber, which then
//! sees the events of every thread, whichever runtime thread polls the store.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keylatch::{AtomicKeyStore, Error, KeySpec, RateLimit, MAX_CREDITS};
use keylatch_redis::StoreConfig;
use support::{info_calls, open, unique_namespace, Server, ADAPTERS};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The fields of one audit event, by name.
type Fields = BTreeMap<String, String>;

/// Keeps the fields of every event on the audit target.
#[derive(Clone, Default)]
struct AuditEvents(Arc<Mutex<Vec<Fields>>>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for AuditEvents {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != keylatch::audit::TARGET {
            return;
        }
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        self.0.lock().expect("not poisoned").push(fields);
    }
}

impl AuditEvents {
    /// How many captured events have exactly these field values (and maybe more).
    fn count(&self, wanted: &[(&str, &str)]) -> usize {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|e| {
                wanted
                    .iter()
                    .all(|(k, v)| e.get(*k).map(String::as_str) == Some(*v))
            })
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_errors_are_audited_under_the_key_id_without_io() {
    let events = AuditEvents::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(events.clone()))
        .expect("the only global subscriber in this binary");

    let server = Server::start().await;
    let mut raw = server.raw().await;
    let day = Duration::from_secs(86_400);
    for adapter in ADAPTERS {
        let ns = unique_namespace("audit");
        let store = open(adapter, &server.url(), StoreConfig::default().namespace(ns)).await;
        let backend = store.backend();
        let spec = KeySpec::new("a").with_rate_limit(RateLimit::new(1, day, 3));
        let issued = store.issue(&spec).await.expect("issues");
        let key = issued.key.expose_secret();
        let id = issued.id.as_str();
        store.load_scripts().await.expect("loads");
        let before = info_calls(&mut raw, "evalsha").await;

        let cost = MAX_CREDITS + 1; // 2^53
        assert!(matches!(
            store.verify(key, cost).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.acquire(key, 1, day * 400).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.rotate(&issued.id, 1, day * 400).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.revoke(&issued.id, day * 400).await,
            Err(Error::InvalidArgument { .. })
        ));
        // Nothing was sent for any of them.
        assert_eq!(info_calls(&mut raw, "evalsha").await, before, "{adapter:?}");

        for op in ["verify", "acquire", "rotate", "revoke"] {
            let wanted = [
                ("op", op),
                ("backend", backend),
                ("key_id", id),
                ("outcome", "error"),
                ("reason", "invalid_argument"),
            ];
            assert_eq!(events.count(&wanted), 1, "{adapter:?}: {op}");
        }
        // The capture does see this key's events, so the counts above can be 1 or 0
        // for a reason: a valid verify is one more event under the same id.
        assert!(store.verify(key, 1).await.expect("ok").is_allowed());
        assert_eq!(
            events.count(&[("op", "verify"), ("key_id", id), ("outcome", "allowed")]),
            1,
            "{adapter:?}"
        );
    }
}
