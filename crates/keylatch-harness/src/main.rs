//! `keylatch-harness conformance …`: the binary behind `cargo xtask conformance`.

mod backends;

fn main() {
    let _ = backends::all();
}
