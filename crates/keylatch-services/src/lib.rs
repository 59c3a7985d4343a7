//! Test services for keylatch: a real PostgreSQL and a real Redis for the conformance
//! suite, the harness and the fault tests.
//!
//! [`Service::start`] gives each caller its own server:
//!
//! 1. `KEYLATCH_POSTGRES_URL` / `KEYLATCH_REDIS_URL`, when set, name an existing server;
//!    no container is started and the server cannot be paused or stopped from here.
//! 2. Otherwise a container is started with `testcontainers` (`GenericImage`): the image
//!    from `KEYLATCH_POSTGRES_IMAGE` / `KEYLATCH_REDIS_IMAGE` when set; else the official
//!    `postgres:16-alpine` / `redis:7-alpine` when present locally; else the images that
//!    `cargo xtask images` builds from Debian packages with no registry
//!    (`keylatch/test-postgres:15-bookworm`, `keylatch/test-redis:7.0-bookworm`); else
//!    the official image is pulled. [`Service::origin`] says which one and why.
//!
//! Containers publish their port on 127.0.0.1 only and are reached there, never on a
//! container address. A [`Service`] owns its container: dropping it removes the
//! container, also when a test fails. Containers of a process that died without
//! dropping them (killed, aborted) are removed by [`clean_stale_containers`], which the
//! first [`Service::start`] of every process runs.
//!
//! This crate only starts and controls servers: it must never depend on a keylatch
//! backend.

use std::fmt;
use std::time::{Duration, Instant};

use testcontainers::bollard::Docker;
use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::{ContainerAsync, GenericImage};

mod container;
mod images;
mod namespace;
mod probe;
mod stale;

pub use namespace::unique_namespace;
pub use stale::clean_stale_containers;

/// Which server a [`Service`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
}

impl ServiceKind {
    /// Both kinds, in the order reports list them.
    pub const ALL: [ServiceKind; 2] = [ServiceKind::Postgres, ServiceKind::Redis];

    /// The lowercase name used in reports and on command lines: `postgres` or `redis`.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceKind::Postgres => "postgres",
            ServiceKind::Redis => "redis",
        }
    }

    /// The environment variable naming an external server to use instead of a container.
    pub fn url_env(&self) -> &'static str {
        match self {
            ServiceKind::Postgres => "KEYLATCH_POSTGRES_URL",
            ServiceKind::Redis => "KEYLATCH_REDIS_URL",
        }
    }

    /// The environment variable naming the container image to use.
    pub fn image_env(&self) -> &'static str {
        match self {
            ServiceKind::Postgres => "KEYLATCH_POSTGRES_IMAGE",
            ServiceKind::Redis => "KEYLATCH_REDIS_IMAGE",
        }
    }

    /// The server's port inside its container.
    pub(crate) fn container_port(&self) -> ContainerPort {
        match self {
            ServiceKind::Postgres => 5432.tcp(),
            ServiceKind::Redis => 6379.tcp(),
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a service could not be started or controlled.
///
/// Match on the variants, never on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No Docker engine, no usable image, and no external URL: `reason` says what is
    /// missing, `remedy` what to do about it.
    #[error("{kind} is not available: {reason}; {remedy}")]
    NotAvailable {
        /// The service that could not be started.
        kind: ServiceKind,
        /// What is missing.
        reason: String,
        /// What would fix it.
        remedy: String,
    },
    /// Pause, stop and the like were asked of an external server, which we do not control.
    #[error("{kind} is an external server (from {}), which cannot be paused, stopped or restarted from here", kind.url_env())]
    NotControllable {
        /// The service the control was asked of.
        kind: ServiceKind,
    },
    /// Anything else that Docker or testcontainers reported, or a container that did not
    /// become ready.
    #[error("{kind}: container operation failed: {source}")]
    Docker {
        /// The service concerned.
        kind: ServiceKind,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ServiceError {
    /// The service the error is about.
    pub fn kind(&self) -> ServiceKind {
        match self {
            ServiceError::NotAvailable { kind, .. }
            | ServiceError::NotControllable { kind }
            | ServiceError::Docker { kind, .. } => *kind,
        }
    }

    pub(crate) fn docker(
        kind: ServiceKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ServiceError::Docker {
            kind,
            source: source.into(),
        }
    }
}

/// A running PostgreSQL or Redis server for tests: a container this value owns, or an
/// external server named by an environment variable.
///
/// Dropping a `Service` removes its container (testcontainers needs a tokio runtime for
/// that; when none is running, a small one is made for the purpose). Every method works
/// from a multi-threaded tokio runtime.
pub struct Service {
    kind: ServiceKind,
    origin: String,
    backing: Backing,
}

enum Backing {
    /// A server we do not control, at this URL.
    External { url: String },
    /// A container we started.
    Container(Box<container::Managed>),
}

impl Service {
    /// Starts the service, or names the external one.
    ///
    /// `KEYLATCH_POSTGRES_URL` / `KEYLATCH_REDIS_URL` when set (external server, no
    /// container); else a container: `KEYLATCH_*_IMAGE` if set, else the official default
    /// (`postgres:16-alpine` / `redis:7-alpine`) if present locally, else the locally
    /// built `keylatch/…` image (and [`origin`](Self::origin) says so), else the official
    /// default pulled from the registry.
    ///
    /// A container is ready when the server has logged that it accepts connections and
    /// has answered a real protocol exchange on its published port (a PostgreSQL startup
    /// handshake ending in ReadyForQuery, a Redis `PING`).
    ///
    /// # Errors
    ///
    /// [`ServiceError::NotAvailable`] when there is no Docker engine or no usable image,
    /// with the reason and the remedy; [`ServiceError::Docker`] when the container fails
    /// to start or to become ready (it is removed again).
    pub async fn start(kind: ServiceKind) -> Result<Service, ServiceError> {
        if let Some(url) = external_url(kind) {
            let origin = format!(
                "external server {} (from {})",
                images::redact_url(&url),
                kind.url_env()
            );
            tracing::info!(service = kind.name(), %origin, "using an external server");
            return Ok(Service {
                kind,
                origin,
                backing: Backing::External { url },
            });
        }

        let started = Instant::now();
        let docker = connect(kind).await?;
        stale::clean_once(&docker, kind).await?;
        let choice = images::choose(&docker, kind).await?;
        let managed = container::Managed::start(kind, docker, &choice).await?;
        let startup = started.elapsed();
        let origin = format!(
            "container {} from {} ({}); ready in {:.1}s",
            managed.short_id(),
            choice.reference,
            choice.why,
            startup.as_secs_f64()
        );
        tracing::info!(service = kind.name(), %origin, "service started");
        Ok(Service {
            kind,
            origin,
            backing: Backing::Container(Box::new(managed)),
        })
    }

    /// Which server this is.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The current connection URL, on 127.0.0.1 for a container.
    ///
    /// PostgreSQL: `postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable` (trust
    /// authentication); Redis: `redis://127.0.0.1:PORT`. The port changes when the
    /// container is stopped and restarted: call this again after
    /// [`restart`](Self::restart) and reconnect. For an external server, the URL from the
    /// environment as given (it may hold credentials: do not log it).
    pub fn url(&self) -> String {
        match &self.backing {
            Backing::External { url } => url.clone(),
            Backing::Container(managed) => connection_url(self.kind, managed.port()),
        }
    }

    /// A description for people: which image or external server (never credentials),
    /// why that one, and how long the container took to become ready.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// Whether this is an external server (from `KEYLATCH_*_URL`) rather than a container.
    pub fn is_external(&self) -> bool {
        matches!(self.backing, Backing::External { .. })
    }

    /// The container's id, or `None` for an external server.
    pub fn container_id(&self) -> Option<&str> {
        match &self.backing {
            Backing::External { .. } => None,
            Backing::Container(managed) => Some(managed.id()),
        }
    }

    /// Whether the container is paused right now (asks the Docker engine).
    ///
    /// # Errors
    ///
    /// [`ServiceError::NotControllable`] for an external server; [`ServiceError::Docker`]
    /// when Docker cannot say.
    pub async fn is_paused(&self) -> Result<bool, ServiceError> {
        self.managed()?.is_paused().await
    }

    /// Freezes every process of the container: requests sent meanwhile hang (they are
    /// neither answered nor refused) until [`unpause`](Self::unpause). The port stays.
    ///
    /// # Errors
    ///
    /// [`ServiceError::NotControllable`] for an external server; [`ServiceError::Docker`]
    /// when Docker refuses (for example when already paused).
    pub async fn pause(&self) -> Result<(), ServiceError> {
        self.managed()?.pause().await
    }

    /// Resumes a paused container; requests that hung are then served.
    ///
    /// # Errors
    ///
    /// As for [`pause`](Self::pause).
    pub async fn unpause(&self) -> Result<(), ServiceError> {
        self.managed()?.unpause().await
    }

    /// Stops the server; connections are closed and new ones refused until
    /// [`restart`](Self::restart).
    ///
    /// PostgreSQL gets SIGINT (fast shutdown: it disconnects its clients), since on
    /// Docker's default SIGTERM it would wait for every client to leave; Redis gets
    /// SIGTERM. Either is killed if it has not exited within 10 seconds.
    ///
    /// # Errors
    ///
    /// As for [`pause`](Self::pause).
    pub async fn stop(&self) -> Result<(), ServiceError> {
        self.managed()?.stop().await
    }

    /// Starts a stopped container again and waits until it is ready, as
    /// [`start`](Self::start) does. The host port changes: take [`url`](Self::url) again.
    ///
    /// # Errors
    ///
    /// As for [`pause`](Self::pause); also [`ServiceError::Docker`] when the container
    /// is not stopped, or when the server does not become ready again.
    pub async fn restart(&self) -> Result<(), ServiceError> {
        self.managed()?.restart().await
    }

    /// Removes the container now and reports whether that worked (dropping the
    /// `Service` does the same, but can only log a failure). Nothing to do for an
    /// external server.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Docker`] when Docker could not remove the container.
    pub async fn remove(self) -> Result<(), ServiceError> {
        match self.backing {
            Backing::External { .. } => Ok(()),
            Backing::Container(managed) => (*managed).remove().await,
        }
    }

    fn managed(&self) -> Result<&container::Managed, ServiceError> {
        match &self.backing {
            Backing::External { .. } => Err(ServiceError::NotControllable { kind: self.kind }),
            Backing::Container(managed) => Ok(managed),
        }
    }
}

impl fmt::Debug for Service {
    // Hand-written: the URL of an external server may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn connection_url(kind: ServiceKind, port: u16) -> String {
    match kind {
        ServiceKind::Postgres => {
            format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
        }
        ServiceKind::Redis => format!("redis://127.0.0.1:{port}"),
    }
}

/// The external server's URL, when its variable is set to something.
fn external_url(kind: ServiceKind) -> Option<String> {
    std::env::var(kind.url_env())
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// How long a container may take to start and become ready.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The Docker client, after checking that an engine answers.
pub(crate) async fn connect(kind: ServiceKind) -> Result<Docker, ServiceError> {
    let remedy = format!(
        "start the Docker engine (for example `setsid dockerd >/tmp/dockerd.log 2>&1 &` as root), \
         or set {} to use an existing server",
        kind.url_env()
    );
    let endpoint =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|err| ServiceError::NotAvailable {
            kind,
            reason: format!("no Docker engine answers at {endpoint} ({err})"),
            remedy: remedy.clone(),
        })?;
    match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(err)) => Err(ServiceError::NotAvailable {
            kind,
            reason: format!("no Docker engine answers at {endpoint} ({err})"),
            remedy,
        }),
        Err(_) => Err(ServiceError::NotAvailable {
            kind,
            reason: format!("the Docker engine at {endpoint} did not answer within 10 s"),
            remedy,
        }),
    }
}

/// What a container waits for in its log before the protocol check.
pub(crate) fn ready_line(kind: ServiceKind) -> WaitFor {
    match kind {
        ServiceKind::Postgres => WaitFor::message_on_stderr(probe::POSTGRES_READY_LINE),
        ServiceKind::Redis => WaitFor::message_on_stdout(probe::REDIS_READY_LINE),
    }
}

/// The container type every service uses.
pub(crate) type Container = ContainerAsync<GenericImage>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_point_at_loopback() {
        assert_eq!(
            connection_url(ServiceKind::Postgres, 5000),
            "postgres://postgres@127.0.0.1:5000/postgres?sslmode=disable"
        );
        assert_eq!(
            connection_url(ServiceKind::Redis, 6000),
            "redis://127.0.0.1:6000"
        );
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(ServiceKind::Postgres.name(), "postgres");
        assert_eq!(ServiceKind::Redis.name(), "redis");
        assert_eq!(ServiceKind::Redis.to_string(), "redis");
    }
}
