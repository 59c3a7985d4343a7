//! The servers a run needs: the ones named by `KEYLATCH_POSTGRES_URL` /
//! `KEYLATCH_REDIS_URL` (native servers on loopback give truer numbers), else
//! containers started through `keylatch-services`.

use std::collections::BTreeMap;

use keylatch_services::{Service, ServiceKind};

use crate::config::{server_of, Settings};

/// One running server.
#[derive(Debug)]
pub struct Server {
    /// Where to connect (may hold credentials: never printed).
    pub url: String,
    /// For people: which server, from where.
    pub origin: String,
    /// True for a server named by the environment, false for a container.
    pub external: bool,
    // Dropped at the end of the run: removes the container.
    _service: Service,
}

/// The servers of one run, and the backends that cannot run for want of one.
#[derive(Debug, Default)]
pub struct Servers {
    /// PostgreSQL, when a selected backend needs it and it could be had.
    pub postgres: Option<Server>,
    /// Redis, likewise.
    pub redis: Option<Server>,
    /// Backends that will not run, with the reason and the remedy.
    pub not_run: BTreeMap<&'static str, String>,
}

impl Servers {
    /// Starts what the selected backends need. A server that cannot be had fails the
    /// run when the user named a backend that needs it; otherwise its backends are
    /// listed in [`Servers::not_run`] and the run goes on without them.
    pub async fn start(settings: &Settings) -> Result<Servers, String> {
        let mut servers = Servers::default();
        for kind in ServiceKind::ALL {
            let needing: Vec<&'static str> = settings
                .backends
                .iter()
                .copied()
                .filter(|b| server_of(b) == Some(kind))
                .collect();
            if needing.is_empty() {
                continue;
            }
            match Service::start(kind).await {
                Ok(service) => {
                    let server = Server {
                        url: service.url(),
                        origin: service.origin(),
                        external: service.is_external(),
                        _service: service,
                    };
                    eprintln!("keylatch-benches: {kind}: {}", server.origin);
                    match kind {
                        ServiceKind::Postgres => servers.postgres = Some(server),
                        ServiceKind::Redis => servers.redis = Some(server),
                    }
                }
                Err(e) if settings.explicit => {
                    return Err(format!(
                        "{} need {kind}, which could not be started: {e}",
                        needing.join(", ")
                    ));
                }
                Err(e) => {
                    eprintln!(
                        "keylatch-benches: NOT RUN: {} ({kind} could not be started: {e})",
                        needing.join(", ")
                    );
                    for b in needing {
                        servers
                            .not_run
                            .insert(b, format!("{kind} unavailable: {e}"));
                    }
                }
            }
        }
        Ok(servers)
    }

    /// `native` when every server used came from the environment, `container` when
    /// every one was a container, `mixed` otherwise, `none` when no server was needed.
    pub fn label(&self) -> &'static str {
        let used: Vec<bool> = [&self.postgres, &self.redis]
            .into_iter()
            .flatten()
            .map(|s| s.external)
            .collect();
        match (used.iter().any(|e| *e), used.iter().any(|e| !*e)) {
            (false, false) => "none",
            (true, false) => "native",
            (false, true) => "container",
            (true, true) => "mixed",
        }
    }
}
