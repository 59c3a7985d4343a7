//! The services answer for real: each container serves queries, holds requests while
//! paused, refuses them while stopped, comes back on its (new) port after a restart, and
//! is removed when its `Service` goes, also when the owning process is killed.
//!
//! These tests need a Docker engine (or the `KEYLATCH_*_URL` servers). Without one they
//! fail with the reason and the remedy; they never skip.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use keylatch_services::{
    clean_stale_containers, unique_namespace, Service, ServiceError, ServiceKind,
};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use sqlx::{Connection, PgConnection};
use testcontainers::bollard::errors::Error as BollardError;

async fn start(kind: ServiceKind) -> Service {
    match Service::start(kind).await {
        Ok(service) => {
            eprintln!("{kind}: {}", service.origin());
            service
        }
        // The error's text carries the reason and the remedy.
        Err(err) => panic!("cannot start {kind}: {err}"),
    }
}

/// An external server is not ours to pause or stop: every control says so.
async fn assert_not_controllable(service: &Service) {
    eprintln!(
        "{}: external server, so pause/stop/restart are checked to be refused",
        service.kind()
    );
    assert!(matches!(
        service.pause().await,
        Err(ServiceError::NotControllable { .. })
    ));
    assert!(matches!(
        service.unpause().await,
        Err(ServiceError::NotControllable { .. })
    ));
    assert!(matches!(
        service.stop().await,
        Err(ServiceError::NotControllable { .. })
    ));
    assert!(matches!(
        service.restart().await,
        Err(ServiceError::NotControllable { .. })
    ));
    assert!(service.container_id().is_none());
}

async fn pg_connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to postgres: {err}"))
}

async fn select(conn: &mut PgConnection, value: i32) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT $1::int4")
        .bind(value)
        .fetch_one(conn)
        .await
}

async fn redis_connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("a valid redis URL");
    // No response timeout: a request to a paused server must wait, not fail.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to redis: {err}"))
}

async fn ping(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(conn).await
}

/// Observes the paused container for a while: fifty round trips to the Docker engine
/// give a running server ample time to answer a request already sent (a local server
/// does in well under a millisecond), while a paused one cannot answer at all.
async fn stays_paused(service: &Service) {
    for _ in 0..50 {
        assert!(service.is_paused().await.expect("inspect"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_holds_requests_while_paused_and_restarts() {
    let service = start(ServiceKind::Postgres).await;
    let mut conn = pg_connect(&service.url()).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("SELECT 1");
    assert_eq!(one, 1);
    if service.is_external() {
        assert_not_controllable(&service).await;
        return;
    }

    // Paused: a query sent now is not answered until unpause.
    service.pause().await.expect("pause");
    let answered = Arc::new(AtomicBool::new(false));
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let query = tokio::spawn({
        let answered = Arc::clone(&answered);
        async move {
            let result = {
                let mut query = std::pin::pin!(select(&mut conn, 2));
                // The first poll writes the query to the connection.
                let first = futures::poll!(query.as_mut());
                let _ = sent_tx.send(());
                match first {
                    Poll::Ready(result) => result,
                    Poll::Pending => query.await,
                }
            };
            answered.store(true, Ordering::SeqCst);
            (conn, result)
        }
    });
    sent_rx.await.expect("the query task sent its query");
    stays_paused(&service).await;
    assert!(
        !answered.load(Ordering::SeqCst),
        "a paused PostgreSQL answered a query"
    );
    service.unpause().await.expect("unpause");
    let (mut conn, result) = query.await.expect("the query task");
    assert_eq!(result.expect("the query held during the pause"), 2);
    assert!(!service.is_paused().await.expect("inspect"));

    // A restart needs a stop first; asked of a running server it fails at once.
    assert!(matches!(
        service.restart().await,
        Err(ServiceError::Docker { .. })
    ));

    // Stopped: the open connection is closed and new ones are refused.
    let old_url = service.url();
    service.stop().await.expect("stop");
    assert!(select(&mut conn, 3).await.is_err());
    assert!(PgConnection::connect(&old_url).await.is_err());

    // Restarted: answers again, on the port url() gives now.
    service.restart().await.expect("restart");
    let new_url = service.url();
    eprintln!("postgres: {old_url} -> {new_url} after restart");
    let mut conn = pg_connect(&new_url).await;
    assert_eq!(select(&mut conn, 4).await.expect("query after restart"), 4);
    drop(conn);
    service.remove().await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_ping_and_eval_holds_requests_while_paused_and_restarts() {
    let service = start(ServiceKind::Redis).await;
    let mut conn = redis_connect(&service.url()).await;
    assert_eq!(ping(&mut conn).await.expect("PING"), "PONG");
    let key = format!("{}:counter", unique_namespace("services_eval"));
    let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    for expected in [5, 10] {
        let total: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(&key)
            .arg(5)
            .query_async(&mut conn)
            .await
            .expect("EVAL");
        assert_eq!(total, expected);
    }
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    if service.is_external() {
        assert_not_controllable(&service).await;
        return;
    }

    // Paused: a command sent now is not answered until unpause.
    service.pause().await.expect("pause");
    let answered = Arc::new(AtomicBool::new(false));
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let command = tokio::spawn({
        let answered = Arc::clone(&answered);
        let mut conn = conn.clone();
        async move {
            let result = {
                let mut command = std::pin::pin!(ping(&mut conn));
                let first = futures::poll!(command.as_mut());
                let _ = sent_tx.send(());
                match first {
                    Poll::Ready(result) => result,
                    Poll::Pending => command.await,
                }
            };
            answered.store(true, Ordering::SeqCst);
            result
        }
    });
    sent_rx.await.expect("the command task sent its command");
    stays_paused(&service).await;
    assert!(
        !answered.load(Ordering::SeqCst),
        "a paused Redis answered a command"
    );
    service.unpause().await.expect("unpause");
    let result = command.await.expect("the command task");
    assert_eq!(result.expect("the command held during the pause"), "PONG");

    // Stopped: the open connection fails and new ones are refused.
    let old_url = service.url();
    service.stop().await.expect("stop");
    assert!(ping(&mut conn).await.is_err());
    let refused = redis::Client::open(old_url.as_str())
        .expect("a valid redis URL")
        .get_multiplexed_async_connection()
        .await;
    assert!(refused.is_err());

    // Restarted: answers again, on the port url() gives now.
    service.restart().await.expect("restart");
    let new_url = service.url();
    eprintln!("redis: {old_url} -> {new_url} after restart");
    let mut conn = redis_connect(&new_url).await;
    assert_eq!(ping(&mut conn).await.expect("PING after restart"), "PONG");
}

async fn container_exists(id: &str) -> bool {
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .expect("a Docker client");
    match docker.inspect_container(id, None).await {
        Ok(_) => true,
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(err) => panic!("cannot inspect container {id}: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_service_removes_its_container() {
    let service = start(ServiceKind::Redis).await;
    let Some(id) = service.container_id().map(str::to_owned) else {
        assert_not_controllable(&service).await;
        return;
    };
    assert!(container_exists(&id).await);
    drop(service);
    assert!(
        !container_exists(&id).await,
        "container {id} outlived its Service"
    );
}

#[test]
fn a_service_dropped_after_its_runtime_ended_is_still_removed() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let service = runtime.block_on(start(ServiceKind::Redis));
    drop(runtime);
    let Some(id) = service.container_id().map(str::to_owned) else {
        return drop(service);
    };
    // No runtime here: the Service must make its own to remove the container.
    drop(service);
    let check = tokio::runtime::Runtime::new().expect("a runtime");
    assert!(
        !check.block_on(container_exists(&id)),
        "container {id} outlived its Service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_killed_process_are_cleaned_by_the_next_run() {
    // A process that starts a service and is then killed leaves its container behind.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_keylatch-service"))
        .arg("redis")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start keylatch-service");
    let stdout = holder.stdout.take().expect("its stdout");
    let id = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("container ").map(str::to_owned))
    })
    .await
    .expect("reading its output");
    holder.kill().expect("kill keylatch-service");
    holder.wait().expect("reap keylatch-service");
    let Some(id) = id else {
        // External server configured: no container, nothing to leave behind.
        assert!(
            std::env::var_os(ServiceKind::Redis.url_env()).is_some(),
            "keylatch-service printed no container"
        );
        return;
    };
    assert!(
        container_exists(&id).await,
        "the killed process's container should be left over"
    );

    clean_stale_containers()
        .await
        .expect("clean stale containers");
    assert!(
        !container_exists(&id).await,
        "stale container {id} was not removed"
    );
}
