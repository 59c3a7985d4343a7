//! One whole bench run: servers, every selected backend and baseline, the
//! over-limit counts, and clean-up.

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use keylatch::SharedKeyStore;
use keylatch_memory::MemoryStore;
use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Runtime;

use crate::baselines::{floor_postgres, floor_redis, governor, textbook_postgres, textbook_redis};
use crate::config::Settings;
use crate::driver::BenchError;
use crate::measure::Runner;
use crate::over_limit::{self, OverLimit, StoreLimited};
use crate::report::{over_limit_table, Report};
use crate::servers::Servers;
use crate::stores::{Fixture, LeaseCycle, Revoke, Rotate, Verify};

/// Connections in the fred backend's pool. One, like the `redis` backend's single
/// multiplexed connection and the Redis baselines', so that the clients and not the
/// connection counts are compared.
pub const FRED_POOL: usize = 1;
/// The reply timeout of every Redis client here: `StoreConfig`'s default.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `SCAN` calls the Redis clean-up makes (it stops earlier when the scan ends).
const CLEANUP_SCANS: usize = 100_000;

/// The tokio runtime the benchmarks drive their tasks on: one worker per core of the
/// 2-core machines this project runs on, and never more than the machine has.
pub fn runtime() -> std::io::Result<Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
}

/// Runs every selected backend and baseline and returns what was measured.
pub fn run(settings: &Settings, criterion: &mut Criterion) -> Result<Report, BenchError> {
    let load_start = crate::report::load_average();
    let rt = runtime()?;
    let servers = rt.block_on(Servers::start(settings))?;
    let name = keylatch_services::unique_namespace("bench");
    let mut report = Report {
        servers: servers.label().to_owned(),
        quick: settings.quick,
        origins: [("postgres", &servers.postgres), ("redis", &servers.redis)]
            .into_iter()
            .filter_map(|(k, s)| s.as_ref().map(|s| (k.to_owned(), s.origin.clone())))
            .collect(),
        not_run: servers
            .not_run
            .iter()
            .map(|(b, why)| ((*b).to_owned(), why.clone()))
            .collect(),
        ..Report::default()
    };
    let runs = |b: &str| settings.runs(b) && !servers.not_run.contains_key(b);
    let mut runner = Runner::new(criterion, &rt, settings);
    let mut over = Vec::new();

    if runs("memory") {
        let store: SharedKeyStore = Arc::new(MemoryStore::new());
        bench_store(&mut runner, "memory", &store)?;
        over.push(rt.block_on(over_limit::measure(Arc::new(StoreLimited::new(
            "memory", store,
        ))))?);
    }
    if runs("governor") {
        runner.bench("verify_limited", "governor", governor::GovernorCheck::new())?;
    }

    if let Some(pg) = &servers.postgres {
        let result = postgres_family(&mut runner, pg.url.as_str(), &name, &runs, &mut over);
        report.rows.append(&mut runner.rows);
        result?;
    }
    if let Some(redis) = &servers.redis {
        let result = redis_family(&mut runner, redis.url.as_str(), &name, &runs, &mut over);
        report.rows.append(&mut runner.rows);
        result?;
    }
    report.rows.append(&mut runner.rows);
    // Report order: the order the backends are listed in, then workload, then
    // concurrency, whatever order they ran in.
    let order = |b: &str| crate::config::BACKENDS.iter().position(|x| *x == b);
    report
        .rows
        .sort_by_key(|r| (order(&r.backend), r.workload.clone(), r.concurrency));
    if !over.is_empty() {
        println!("\n{}", over_limit_table(&over));
    }
    report.over_limit = over;
    report.load = (load_start, crate::report::load_average());
    Ok(report)
}

/// The six workloads on one store, after issuing its keys.
fn bench_store(
    runner: &mut Runner<'_>,
    backend: &str,
    store: &SharedKeyStore,
) -> Result<(), BenchError> {
    eprintln!("keylatch-benches: {backend}: issuing the benchmark keys");
    let f = runner
        .runtime()
        .block_on(Fixture::prepare(Arc::clone(store)))?;
    runner.bench("verify_spread", backend, Verify::spread(&f))?;
    runner.bench("verify_hot", backend, Verify::hot(&f))?;
    runner.bench("verify_limited", backend, Verify::limited(&f))?;
    runner.bench("lease", backend, LeaseCycle::new(&f))?;
    runner.bench("revoke", backend, Revoke::new(&f))?;
    runner.bench("rotate", backend, Rotate::new(&f))?;
    Ok(())
}

/// postgres, floor-postgres and textbook-postgres, all on the pool of one `PgStore`
/// (its defaults: 16 connections, READ COMMITTED), in one schema dropped afterwards.
fn postgres_family(
    runner: &mut Runner<'_>,
    url: &str,
    schema: &str,
    runs: &dyn Fn(&str) -> bool,
    over: &mut Vec<OverLimit>,
) -> Result<(), BenchError> {
    let rt = runner.runtime();
    let connect = url
        .parse()
        .map_err(|_| "KEYLATCH_POSTGRES_URL is not a PostgreSQL URL")?;
    let options = PgStoreOptions::new().schema(Schema::new(schema)?);
    let store = rt.block_on(PgStore::connect_with(connect, options))?;
    let pool = store.pool().clone();
    let result = (|| {
        if runs("postgres") {
            let shared: SharedKeyStore = Arc::new(store.clone());
            bench_store(runner, "postgres", &shared)?;
            over.push(rt.block_on(over_limit::measure(Arc::new(StoreLimited::new(
                "postgres", shared,
            ))))?);
        }
        if runs("floor-postgres") {
            let floor = rt.block_on(floor_postgres::FloorPostgres::setup(pool.clone(), schema))?;
            runner.bench(
                "update",
                "floor-postgres",
                floor_postgres::Update(Arc::clone(&floor)),
            )?;
            runner.bench("select1", "floor-postgres", floor_postgres::Select1(floor))?;
        }
        if runs("textbook-postgres") {
            let tb = rt.block_on(textbook_postgres::TextbookPostgres::setup(
                pool.clone(),
                schema,
            ))?;
            runner.bench(
                "verify_spread",
                "textbook-postgres",
                textbook_postgres::Verify::spread(&tb),
            )?;
            runner.bench(
                "verify_hot",
                "textbook-postgres",
                textbook_postgres::Verify::hot(&tb),
            )?;
            over.push(rt.block_on(over_limit::measure(tb))?);
        }
        Ok::<(), BenchError>(())
    })();
    // The schema goes whatever happened, so that runs on a shared server leave nothing.
    let dropped =
        rt.block_on(sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&pool));
    if let Err(e) = dropped {
        eprintln!("keylatch-benches: could not drop the bench schema {schema}: {e}");
    }
    result
}

/// redis, fred, floor-redis and textbook-redis under one key namespace, removed
/// afterwards.
fn redis_family(
    runner: &mut Runner<'_>,
    url: &str,
    namespace: &str,
    runs: &dyn Fn(&str) -> bool,
    over: &mut Vec<OverLimit>,
) -> Result<(), BenchError> {
    let rt = runner.runtime();
    let config = StoreConfig::default()
        .namespace(Namespace::new(namespace)?)
        .response_timeout(REDIS_TIMEOUT);
    // The baselines' connection: configured like the one connect_redis_rs makes.
    let client = redis::Client::open(url).map_err(|_| "KEYLATCH_REDIS_URL is not a Redis URL")?;
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_connection_timeout(Some(REDIS_TIMEOUT));
    let conn = rt.block_on(ConnectionManager::new_with_config(client, manager_config))?;
    let result = (|| {
        for (backend, fred) in [("redis", false), ("fred", true)] {
            if !runs(backend) {
                continue;
            }
            let store = rt.block_on(async {
                let store = if fred {
                    RedisStore::connect_fred(url, FRED_POOL, config.clone()).await?
                } else {
                    RedisStore::connect_redis_rs(url, config.clone()).await?
                };
                store.load_scripts().await?;
                Ok::<_, keylatch::Error>(store)
            })?;
            let shared: SharedKeyStore = Arc::new(store);
            bench_store(runner, backend, &shared)?;
            over.push(rt.block_on(over_limit::measure(Arc::new(StoreLimited::new(
                backend, shared,
            ))))?);
        }
        if runs("floor-redis") {
            let floor = rt.block_on(floor_redis::FloorRedis::setup(conn.clone(), namespace))?;
            runner.bench(
                "evalsha",
                "floor-redis",
                floor_redis::EvalSha(Arc::clone(&floor)),
            )?;
            runner.bench("ping", "floor-redis", floor_redis::Ping(floor))?;
        }
        if runs("textbook-redis") {
            let tb = rt.block_on(textbook_redis::TextbookRedis::for_speed(
                conn.clone(),
                namespace,
            ))?;
            runner.bench(
                "verify_spread",
                "textbook-redis",
                textbook_redis::Verify::spread(&tb),
            )?;
            runner.bench(
                "verify_hot",
                "textbook-redis",
                textbook_redis::Verify::hot(&tb),
            )?;
            let limited = rt.block_on(textbook_redis::TextbookRedis::setup(
                conn.clone(),
                namespace,
                over_limit::LIMIT,
                0,
            ))?;
            over.push(rt.block_on(over_limit::measure(limited))?);
        }
        Ok::<(), BenchError>(())
    })();
    if let Err(e) = rt.block_on(remove_namespace(conn, namespace)) {
        eprintln!("keylatch-benches: could not remove the bench keys {namespace}:*: {e}");
    }
    result
}

/// Deletes every key under `namespace`, with a bounded number of `SCAN` calls.
async fn remove_namespace(mut conn: ConnectionManager, namespace: &str) -> Result<(), BenchError> {
    let pattern = format!("{namespace}:*");
    let mut cursor: u64 = 0;
    for _ in 0..CLEANUP_SCANS {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
    Err(format!("the scan of {pattern} did not end within {CLEANUP_SCANS} calls").into())
}
