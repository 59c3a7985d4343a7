//! The criterion bench of every backend and baseline (see the `keylatch-benches`
//! library docs and docs/benchmarks.md). Run it with `cargo xtask bench`, which reads
//! the results file this writes; `cargo bench -p keylatch-benches` works too.

use std::process::ExitCode;

use criterion::Criterion;
use keylatch_benches::config::Settings;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keylatch-benches: {e}");
            return ExitCode::from(2);
        }
    };
    let mut criterion = Criterion::default()
        // The xtask draws the plot; criterion's HTML reports would only cost time.
        .without_plots()
        .nresamples(if settings.quick { 10_000 } else { 100_000 })
        .configure_from_args();
    let report = match keylatch_benches::run::run(&settings, &mut criterion) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keylatch-benches: the run failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    criterion.final_summary();
    if !settings.measuring {
        return ExitCode::SUCCESS;
    }
    let path = settings.out_dir.join("bench-results.tsv");
    match report.write(&path) {
        Ok(()) => {
            eprintln!("keylatch-benches: results in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keylatch-benches: could not write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
