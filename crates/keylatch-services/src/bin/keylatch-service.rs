//! `keylatch-service postgres|redis`: starts one test service the way the suite does,
//! prints where it is, and keeps it until standard input closes or a line is entered;
//! then removes the container.
//!
//! Handy for poking at a server by hand (`psql`, `redis-cli`), and used by the tests to
//! leave a container behind on purpose (by killing this process).

use std::io::Write;
use std::process::ExitCode;

use keylatch_services::{Service, ServiceKind};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["postgres"] => ServiceKind::Postgres,
        ["redis"] => ServiceKind::Redis,
        _ => {
            eprintln!("usage: keylatch-service postgres|redis");
            return ExitCode::from(2);
        }
    };
    let service = match Service::start(kind).await {
        Ok(service) => service,
        Err(err) => {
            eprintln!("keylatch-service: {err}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        // An external server's URL may hold a password: only ever print the origin.
        let _ = writeln!(out, "origin {}", service.origin());
        if let Some(id) = service.container_id() {
            let _ = writeln!(out, "container {id}");
            let _ = writeln!(out, "url {}", service.url());
        }
        let _ = writeln!(out, "ready (press Enter or close stdin to remove it)");
        let _ = out.flush();
    }
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await;
    match service.remove().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keylatch-service: {err}");
            ExitCode::FAILURE
        }
    }
}
