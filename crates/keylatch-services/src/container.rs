//! A container we started: start-up, readiness, fault controls and removal.

use std::sync::atomic::{AtomicU16, Ordering};

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::bollard::query_parameters::KillContainerOptionsBuilder;
use testcontainers::bollard::Docker;
use testcontainers::core::client::ClientError;
use testcontainers::core::ContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt, TestcontainersError};
use tokio::io::AsyncBufReadExt;

use crate::images::{self, Choice, Flavor};
use crate::probe::{self, POSTGRES_READY_LINE, REDIS_READY_LINE};
use crate::{ready_line, stale, Container, ServiceError, ServiceKind, STARTUP_TIMEOUT};

/// How long a server may take to exit on `stop` before Docker kills it.
const STOP_TIMEOUT_SECS: i32 = 10;

pub(crate) struct Managed {
    kind: ServiceKind,
    docker: Docker,
    /// Always `Some` until `remove` or `drop` takes it.
    container: Option<Container>,
    id: String,
    /// The published host port; 0 never happens after a successful start.
    port: AtomicU16,
}

impl Managed {
    pub(crate) async fn start(
        kind: ServiceKind,
        docker: Docker,
        choice: &Choice,
    ) -> Result<Managed, ServiceError> {
        let Some((name, tag)) = images::split_reference(&choice.reference) else {
            return Err(ServiceError::NotAvailable {
                kind,
                reason: format!(
                    "image reference `{}` is not of the form name[:tag]",
                    choice.reference
                ),
                remedy: format!("set {} to an image name with a tag", kind.image_env()),
            });
        };
        let port = kind.container_port();
        let instance = stale::new_instance();
        let request = GenericImage::new(name, tag)
            .with_exposed_port(port)
            .with_wait_for(ready_line(kind))
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_labels(stale::labels(kind, &instance))
            .with_host_config_modifier(move |host_config| publish_on_loopback(host_config, port));
        let request = match (choice.flavor, kind) {
            (Flavor::Official, ServiceKind::Postgres) => request
                .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
                // A test server: no durability, faster start-up and writes.
                .with_cmd([
                    "postgres",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]),
            (Flavor::Official, ServiceKind::Redis) => request.with_cmd([
                "redis-server",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            // Built for exactly this by `cargo xtask images`: the image's own command.
            (Flavor::Local, _) => request,
        };

        let container = match request.start().await {
            Ok(container) => container,
            Err(err) => {
                stale::remove_instance(&docker, kind, &instance).await;
                return Err(start_error(kind, choice, err));
            }
        };
        let managed = Managed {
            kind,
            docker,
            id: container.id().to_owned(),
            container: Some(container),
            port: AtomicU16::new(0),
        };
        // On error `managed` is dropped here, which removes the container.
        managed.await_ready().await?;
        Ok(managed)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Acquire)
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) async fn is_paused(&self) -> Result<bool, ServiceError> {
        let inspect = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|err| self.docker_error(err))?;
        Ok(inspect
            .state
            .and_then(|state| state.paused)
            .unwrap_or(false))
    }

    pub(crate) fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    fn container(&self) -> Result<&Container, ServiceError> {
        self.container
            .as_ref()
            .ok_or_else(|| ServiceError::docker(self.kind, "the container was removed"))
    }

    fn docker_error(
        &self,
        err: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ServiceError {
        ServiceError::docker(self.kind, err)
    }

    /// Looks up the published port (it changes on every start) and waits until the
    /// server answers on it.
    async fn await_ready(&self) -> Result<(), ServiceError> {
        let port = self
            .container()?
            .get_host_port_ipv4(self.kind.container_port())
            .await
            .map_err(|err| self.docker_error(err))?;
        probe::until_ready(self.kind, port, STARTUP_TIMEOUT)
            .await
            .map_err(|problem| self.docker_error(problem))?;
        self.port.store(port, Ordering::Release);
        Ok(())
    }

    pub(crate) async fn pause(&self) -> Result<(), ServiceError> {
        self.container()?
            .pause()
            .await
            .map_err(|err| self.docker_error(err))
    }

    pub(crate) async fn unpause(&self) -> Result<(), ServiceError> {
        self.container()?
            .unpause()
            .await
            .map_err(|err| self.docker_error(err))
    }

    pub(crate) async fn stop(&self) -> Result<(), ServiceError> {
        let container = self.container()?;
        if self.kind == ServiceKind::Postgres {
            // Fast shutdown. The stop below then only waits for the exit (PostgreSQL
            // ignores the weaker SIGTERM once a fast shutdown is under way) and kills
            // the server should it hang.
            let sigint = KillContainerOptionsBuilder::new().signal("SIGINT").build();
            self.docker
                .kill_container(&self.id, Some(sigint))
                .await
                .map_err(|err| self.docker_error(err))?;
        }
        container
            .stop_with_timeout(Some(STOP_TIMEOUT_SECS))
            .await
            .map_err(|err| self.docker_error(err))
    }

    pub(crate) async fn restart(&self) -> Result<(), ServiceError> {
        let container = self.container()?;
        // Starting a running container changes nothing, and no new ready line would
        // come: say so at once instead of waiting for the start-up timeout.
        if container
            .is_running()
            .await
            .map_err(|err| self.docker_error(err))?
        {
            return Err(self.docker_error("restart needs a stopped container: call stop first"));
        }
        // The log keeps the lines of earlier starts: wait for one more ready line than
        // it holds now.
        let seen = self.ready_lines_so_far(container).await?;
        container
            .start()
            .await
            .map_err(|err| self.docker_error(err))?;
        tokio::time::timeout(
            STARTUP_TIMEOUT,
            self.wait_for_ready_lines(container, seen + 1),
        )
        .await
        .map_err(|_| {
            self.docker_error(format!(
                "no ready line in the log within {}s of restarting",
                STARTUP_TIMEOUT.as_secs()
            ))
        })??;
        self.await_ready().await
    }

    pub(crate) async fn remove(mut self) -> Result<(), ServiceError> {
        let kind = self.kind;
        match self.container.take() {
            Some(container) => container
                .rm()
                .await
                .map_err(|err| ServiceError::docker(kind, err)),
            None => Ok(()),
        }
    }

    fn ready_line_text(&self) -> &'static str {
        match self.kind {
            ServiceKind::Postgres => POSTGRES_READY_LINE,
            ServiceKind::Redis => REDIS_READY_LINE,
        }
    }

    async fn ready_lines_so_far(&self, container: &Container) -> Result<usize, ServiceError> {
        let log = match self.kind {
            ServiceKind::Postgres => container.stderr_to_vec().await,
            ServiceKind::Redis => container.stdout_to_vec().await,
        }
        .map_err(|err| self.docker_error(err))?;
        let needle = self.ready_line_text().as_bytes();
        Ok(log
            .split(|&byte| byte == b'\n')
            .filter(|line| contains(line, needle))
            .count())
    }

    async fn wait_for_ready_lines(
        &self,
        container: &Container,
        wanted: usize,
    ) -> Result<(), ServiceError> {
        let log = match self.kind {
            ServiceKind::Postgres => container.stderr(true),
            ServiceKind::Redis => container.stdout(true),
        };
        let needle = self.ready_line_text().as_bytes();
        let mut lines = log.split(b'\n');
        let mut seen = 0;
        while let Some(line) = lines
            .next_segment()
            .await
            .map_err(|err| self.docker_error(err))?
        {
            if contains(&line, needle) {
                seen += 1;
                if seen >= wanted {
                    return Ok(());
                }
            }
        }
        Err(self.docker_error("the container's log ended (the server exited) before it was ready"))
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        // testcontainers removes the container in its own Drop, which needs a tokio
        // runtime. Without one (a Service dropped after its runtime ended, or on a
        // plain thread), make a small one for the purpose.
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(container);
            return;
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(async move { drop(container) }),
            Err(err) => {
                // Dropping it here would panic; leaving it is safe, since the next run's
                // stale cleaning removes it.
                tracing::error!(container = %self.id, error = %err, "no runtime to remove the container; it is left for the next run to clean");
                std::mem::forget(container);
            }
        }
    }
}

/// Publishes the server's port on the host's loopback only, on a port Docker picks.
/// By default Docker publishes on every interface, which would offer a trust-auth
/// database to the whole network.
fn publish_on_loopback(host_config: &mut HostConfig, port: ContainerPort) {
    host_config.publish_all_ports = Some(false);
    host_config.port_bindings = Some(
        [(
            port.to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: None,
            }]),
        )]
        .into_iter()
        .collect(),
    );
}

/// Turns a failed start into the error to report: an image that could not be pulled is
/// "not available", with the reason and the remedy the choice prepared.
fn start_error(kind: ServiceKind, choice: &Choice, err: TestcontainersError) -> ServiceError {
    match err {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => {
            let (reason, remedy) = choice.if_unpullable.clone();
            ServiceError::NotAvailable {
                kind,
                reason: format!("{reason} ({err})"),
                remedy,
            }
        }
        other => ServiceError::docker(kind, other),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_published_on_loopback_only() {
        let mut host_config = HostConfig {
            publish_all_ports: Some(true),
            ..HostConfig::default()
        };
        publish_on_loopback(&mut host_config, ServiceKind::Redis.container_port());
        assert_eq!(host_config.publish_all_ports, Some(false));
        let bindings = host_config.port_bindings.unwrap();
        let binding = bindings["6379/tcp"].as_ref().unwrap();
        assert_eq!(binding[0].host_ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn needles_are_found_in_lines() {
        assert!(contains(
            b"2026 LOG:  database system is ready to accept connections",
            POSTGRES_READY_LINE.as_bytes()
        ));
        assert!(!contains(
            b"database system is shut down",
            POSTGRES_READY_LINE.as_bytes()
        ));
    }
}
