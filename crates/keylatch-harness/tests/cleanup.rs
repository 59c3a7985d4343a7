//! A conformance run leaves nothing on the servers it used: no schema in PostgreSQL, no
//! key in Redis. This matters for runs against an existing deployment
//! (`KEYLATCH_*_URL`), where no container is removed afterwards.
//!
//! The test points the harness at servers it started itself, as URL overrides, so the
//! harness treats them exactly like a user's own servers. It needs a Docker engine (or
//! the `KEYLATCH_*_URL` servers); without one it fails with the reason and the remedy.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use keylatch_postgres::sqlx::{self, postgres::PgConnection, Connection};
use keylatch_services::{Service, ServiceKind};

/// What the harness names its schemas and key namespaces: `unique_namespace("conformance")`.
const PREFIX: &str = "kl_conformance_";

async fn start(kind: ServiceKind) -> Service {
    match Service::start(kind).await {
        Ok(service) => service,
        // The error's text carries the reason and the remedy.
        Err(err) => panic!("cannot start {kind}: {err}"),
    }
}

/// The harness's schemas present on the server.
async fn schemas(url: &str) -> BTreeSet<String> {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut conn)
            .await
            .expect("list schemas");
    rows.into_iter().map(|(name,)| name).collect()
}

/// The harness's keys present on the server.
async fn redis_keys(url: &str) -> BTreeSet<String> {
    let client = redis::Client::open(url).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let mut out = BTreeSet::new();
    let mut cursor: u64 = 0;
    // SCAN visits every key present for the whole scan; bounded by the key count.
    for _ in 0..100_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        out.extend(keys);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_leaves_no_schema_and_no_key_behind() {
    let postgres = start(ServiceKind::Postgres).await;
    let redis = start(ServiceKind::Redis).await;
    // Compare with what was there before, so that an external server shared with
    // other runs does not confuse the test.
    let schemas_before = schemas(&postgres.url()).await;
    let keys_before = redis_keys(&redis.url()).await;

    let report = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cleanup-{}.json", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_keylatch-harness"));
    command
        .args(["conformance", "--rounds", "1", "--json"])
        .arg(&report)
        .args([
            "--backend",
            "postgres",
            "--backend",
            "redis",
            "--backend",
            "fred",
        ])
        .env("KEYLATCH_POSTGRES_URL", postgres.url())
        .env("KEYLATCH_REDIS_URL", redis.url());
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .expect("join")
        .expect("run the harness");
    assert!(status.success(), "the harness failed: {status}");

    // The run did write: every backend passed with operations on its store, so a
    // cleanup that did nothing would leave schemas and keys for the checks below.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("read the report"))
            .expect("the report is JSON");
    let backends = report["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 3);
    for backend in backends {
        assert_eq!(backend["status"], "passed", "{backend}");
        let operations: u64 = backend["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .map(|s| s["operations"].as_u64().expect("operations"))
            .sum();
        assert!(operations > 0, "{backend}");
    }

    let new_schemas: Vec<String> = schemas(&postgres.url())
        .await
        .difference(&schemas_before)
        .cloned()
        .collect();
    assert_eq!(new_schemas, Vec::<String>::new(), "schemas left behind");
    let new_keys: Vec<String> = redis_keys(&redis.url())
        .await
        .difference(&keys_before)
        .cloned()
        .collect();
    assert!(
        new_keys.is_empty(),
        "{} keys left behind, such as {:?}",
        new_keys.len(),
        new_keys.first()
    );
}
