//! Labels on our containers, and removal of the ones whose process is gone.
//!
//! Several runs share one Docker engine: cargo runs test binaries one after another,
//! but engineers and CI run suites side by side. Removing every container labelled by
//! testcontainers would pull the servers from under a run still going. So each
//! container carries the identity of the process that started it (host, pid, and the
//! process's start time, so a reused pid is not mistaken for the owner), and only
//! containers whose owner no longer exists on this host count as stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use testcontainers::bollard::errors::Error as BollardError;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;

use crate::{connect, ServiceError, ServiceKind};

/// Set by testcontainers on every container it creates.
const MANAGED_BY: &str = "org.testcontainers.managed-by=testcontainers";
/// Which service the container runs.
const KIND_LABEL: &str = "dev.keylatch.services.kind";
/// `host/pid/start-time` of the process that started the container.
const OWNER_LABEL: &str = "dev.keylatch.services.owner";
/// Unique per container start, to find a container whose start failed half-way.
const INSTANCE_LABEL: &str = "dev.keylatch.services.instance";

/// The labels for a new container.
pub(crate) fn labels(kind: ServiceKind, instance: &str) -> [(&'static str, String); 3] {
    [
        (KIND_LABEL, kind.name().to_owned()),
        (OWNER_LABEL, own_identity().to_owned()),
        (INSTANCE_LABEL, instance.to_owned()),
    ]
}

/// A value for [`INSTANCE_LABEL`] that no other container start shares.
pub(crate) fn new_instance() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}/{count}", own_identity())
}

/// Removes containers that this crate started from processes that have since ended,
/// on this host (call it at the start of a run; [`crate::Service::start`] does so once
/// per process).
///
/// Containers of live processes, including those of other test runs going on at the
/// same time, and containers started by other tools are left alone.
///
/// # Errors
///
/// [`ServiceError::NotAvailable`] when no Docker engine answers;
/// [`ServiceError::Docker`] when listing or removing fails. Errors that concern no
/// service in particular are reported as [`ServiceKind::Postgres`]'s.
pub async fn clean_stale_containers() -> Result<(), ServiceError> {
    let docker = connect(ServiceKind::Postgres).await?;
    for kind in ServiceKind::ALL {
        clean(&docker, kind).await?;
    }
    Ok(())
}

/// Runs the cleaning once per process, before its first container starts.
pub(crate) async fn clean_once(docker: &Docker, kind: ServiceKind) -> Result<(), ServiceError> {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        for kind_to_clean in ServiceKind::ALL {
            clean(docker, kind_to_clean)
                .await
                .map_err(|err| match err {
                    // Report against the service being started, which is what failed.
                    ServiceError::Docker { source, .. } => ServiceError::Docker { kind, source },
                    other => other,
                })?;
        }
        Ok(())
    })
    .await
    .map(|_| ())
}

async fn clean(docker: &Docker, kind: ServiceKind) -> Result<(), ServiceError> {
    let selector = format!("{KIND_LABEL}={}", kind.name());
    for container in list(docker, kind, &[MANAGED_BY, &selector]).await? {
        let Some(id) = container.id else { continue };
        let owner = container
            .labels
            .as_ref()
            .and_then(|labels| labels.get(OWNER_LABEL))
            .map(String::as_str)
            .unwrap_or_default();
        if is_stale(owner) {
            tracing::info!(service = kind.name(), container = %id, owner, "removing a stale container");
            remove(docker, kind, &id).await?;
        }
    }
    Ok(())
}

/// Removes whatever container carries this instance label: after a start that failed
/// half-way, testcontainers leaves the container behind without telling us its id.
pub(crate) async fn remove_instance(docker: &Docker, kind: ServiceKind, instance: &str) {
    let selector = format!("{INSTANCE_LABEL}={instance}");
    let outcome = async {
        for container in list(docker, kind, &[&selector]).await? {
            if let Some(id) = container.id {
                remove(docker, kind, &id).await?;
            }
        }
        Ok::<(), ServiceError>(())
    }
    .await;
    if let Err(err) = outcome {
        // The start error is the one to report; this container is stale from now on
        // and the next run removes it.
        tracing::warn!(service = kind.name(), error = %err, "could not remove a container whose start failed");
    }
}

async fn list(
    docker: &Docker,
    kind: ServiceKind,
    labels: &[&str],
) -> Result<Vec<testcontainers::bollard::models::ContainerSummary>, ServiceError> {
    let filters = HashMap::from([(
        "label".to_owned(),
        labels
            .iter()
            .map(|label| (*label).to_owned())
            .collect::<Vec<_>>(),
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map_err(|err| ServiceError::docker(kind, err))
}

async fn remove(docker: &Docker, kind: ServiceKind, id: &str) -> Result<(), ServiceError> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // Gone already, or being removed by another run's cleaning right now.
        Err(BollardError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(err) => Err(ServiceError::docker(kind, err)),
    }
}

/// `host/pid/start-time` of this process.
fn own_identity() -> &'static str {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}/{pid}/{}",
            host_name(),
            start_time(pid).unwrap_or_else(|| "0".to_owned())
        )
    })
}

/// Whether the owner recorded on a container has ended. Owners on other hosts (a
/// shared remote engine) and unreadable labels are never judged stale: when in doubt,
/// a container is left alone.
fn is_stale(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid), Some(started), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host != host_name() || owner == own_identity() {
        return false;
    }
    !process_alive(pid, started)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().replace('/', "_"))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat),
/// where the system has /proc.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold spaces or
    // parentheses: count fields from after the last ')', where field 3 begins.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3).map(str::to_owned)
}

fn process_alive(pid: u32, started: &str) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        // A live process with another start time is a different process that reuses
        // the pid: the owner has ended.
        return match start_time(pid) {
            Some(now) => started == "0" || now == started,
            None => false,
        };
    }
    // No /proc (macOS, say): ask ps, which knows every user's processes.
    std::process::Command::new("ps")
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        // If even ps cannot run, assume alive: better a leftover than a removed server.
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_never_stale() {
        assert!(!is_stale(own_identity()));
        let ours = format!("{}/{}/0", host_name(), std::process::id());
        assert!(!is_stale(&ours));
    }

    #[test]
    fn a_finished_process_is_stale() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_time(pid).unwrap_or_else(|| "0".to_owned());
        child.wait().unwrap();
        assert!(is_stale(&format!("{}/{pid}/{started}", host_name())));
    }

    #[test]
    fn a_reused_pid_is_stale() {
        // Our own pid with another start time: the owner was an earlier process.
        let owner = format!("{}/{}/1", host_name(), std::process::id());
        assert!(is_stale(&owner));
    }

    #[test]
    fn other_hosts_and_odd_labels_are_left_alone() {
        assert!(!is_stale("another-host/1/1"));
        assert!(!is_stale(""));
        assert!(!is_stale("garbage"));
        assert!(!is_stale(&format!("{}/not-a-pid/1", host_name())));
        assert!(!is_stale(&format!("{}/1/2/3", host_name())));
    }

    #[test]
    fn start_time_parsing_survives_odd_command_names() {
        let pid = std::process::id();
        assert!(start_time(pid).is_some());
    }
}
