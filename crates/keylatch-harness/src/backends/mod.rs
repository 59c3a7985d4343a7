//! The backends this build knows, each in its own module with one `prepare` function.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use keylatch_conformance::StoreFactory;
use keylatch_services::{Service, ServiceError, ServiceKind};

mod memory;
mod postgres;
mod redis;

/// A backend ready to run: its store factory, plus whatever must stay alive while it
/// runs (a container, say).
pub struct Prepared {
    /// Opens handles on the backend.
    pub factory: Box<dyn StoreFactory>,
    /// Where the backend's server comes from, for the report.
    pub origin: String,
    /// Dropped after the run: removes containers.
    #[allow(
        dead_code,
        reason = "held only so that dropping it after the run cleans up"
    )]
    pub guard: Box<dyn Any + Send + Sync>,
    /// Removes what the run wrote on the server, or `None` when nothing outlives the
    /// run (memory).
    pub cleanup: Option<Cleanup>,
}

/// Removes a run's data from its server (a schema, a key namespace), so that a run
/// against an existing deployment leaves nothing behind. A container is removed anyway;
/// the harness cleans up there too, so that this path runs in every CI run.
pub struct Cleanup {
    /// What is removed, for people: "schema kl_…", never credentials.
    pub what: String,
    /// Does the removal. Built at prepare time but, being a future, runs only when the
    /// harness awaits it after the run.
    pub run: Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
}

/// Why a backend cannot run here, and what would fix it.
#[derive(Debug, Clone)]
pub struct NotRun {
    /// What is missing.
    pub reason: String,
    /// What to do about it.
    pub remedy: String,
}

/// A registered backend: its name and how to prepare it.
pub struct Entry {
    /// The backend's name on the command line and in reports.
    pub name: &'static str,
    /// Starts what the backend needs.
    pub prepare: fn() -> futures_prepare::PrepareFuture,
}

/// Boxed futures for `prepare` functions.
pub mod futures_prepare {
    use std::future::Future;
    use std::pin::Pin;

    /// What a `prepare` function returns.
    pub type PrepareFuture =
        Pin<Box<dyn Future<Output = Result<super::Prepared, super::NotRun>> + Send>>;
}

/// Every backend this build knows, in report order.
pub fn all() -> Vec<Entry> {
    vec![
        Entry {
            name: "memory",
            prepare: || Box::pin(memory::prepare()),
        },
        Entry {
            name: "postgres",
            prepare: || Box::pin(postgres::prepare()),
        },
        Entry {
            name: "redis",
            prepare: || Box::pin(redis::prepare_redis()),
        },
        Entry {
            name: "fred",
            prepare: || Box::pin(redis::prepare_fred()),
        },
    ]
}

/// The variable that points a backend at an existing server instead of a container.
fn url_variable(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Postgres => "KEYLATCH_POSTGRES_URL",
        ServiceKind::Redis => "KEYLATCH_REDIS_URL",
    }
}

/// Starts the server a backend needs; a server that cannot be had is a `NotRun`
/// with the services' own reason and remedy.
async fn start(kind: ServiceKind) -> Result<Service, NotRun> {
    Service::start(kind).await.map_err(|e| match e {
        ServiceError::NotAvailable { reason, remedy, .. } => NotRun { reason, remedy },
        other => NotRun {
            reason: other.to_string(),
            remedy: format!("see the Docker engine's log, or set {}", url_variable(kind)),
        },
    })
}

/// A server that started but cannot be used (a URL that does not parse, a failed
/// migration): the backend is not run, with the reason.
fn unusable(kind: ServiceKind, reason: String) -> NotRun {
    NotRun {
        reason,
        remedy: format!(
            "check the server, or set {} to a working one",
            url_variable(kind)
        ),
    }
}
