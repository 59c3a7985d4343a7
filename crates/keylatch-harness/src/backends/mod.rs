//! The backends this build knows, each in its own module with one `prepare` function.

use std::any::Any;

use keylatch_conformance::StoreFactory;

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
