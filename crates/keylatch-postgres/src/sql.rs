//! The store's statements: one `.sql` file per operation, embedded at compile time.
//!
//! Each file documents its parameters, its one-row reply and its lock order in its
//! header; `admit.sql` holds the checks that verify and acquire share. The only text substituted into them is the validated, quoted schema name
//! (`{schema}`); every value is a bound parameter.

use crate::options::Schema;

/// The statements of one store, with its schema filled in.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) issue: String,
    pub(crate) verify: String,
    pub(crate) acquire: String,
    pub(crate) renew: String,
    pub(crate) release: String,
    pub(crate) revoke: String,
    pub(crate) drain: String,
    pub(crate) rotate: String,
    pub(crate) inspect: String,
}

const PLACEHOLDER: &str = "{schema}";

fn fill(template: &str, schema: &Schema) -> String {
    template.replace(PLACEHOLDER, &schema.quoted())
}

/// The checks verify and acquire share, written once: each of the two files holds
/// only what its statement does after them.
const ADMIT: &str = include_str!("../sql/admit.sql");

impl Statements {
    pub(crate) fn new(schema: &Schema) -> Self {
        Statements {
            issue: fill(include_str!("../sql/issue.sql"), schema),
            verify: fill(&[ADMIT, include_str!("../sql/verify.sql")].concat(), schema),
            acquire: fill(
                &[ADMIT, include_str!("../sql/acquire.sql")].concat(),
                schema,
            ),
            renew: fill(include_str!("../sql/renew.sql"), schema),
            release: fill(include_str!("../sql/release.sql"), schema),
            revoke: fill(include_str!("../sql/revoke.sql"), schema),
            drain: fill(include_str!("../sql/drain.sql"), schema),
            rotate: fill(include_str!("../sql/rotate.sql"), schema),
            inspect: fill(include_str!("../sql/inspect.sql"), schema),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_tables_only_through_the_schema() {
        let schema = Schema::new("s_test").expect("valid");
        let s = Statements::new(&schema);
        for (name, text) in [
            ("issue", &s.issue),
            ("verify", &s.verify),
            ("acquire", &s.acquire),
            ("renew", &s.renew),
            ("release", &s.release),
            ("revoke", &s.revoke),
            ("drain", &s.drain),
            ("rotate", &s.rotate),
            ("inspect", &s.inspect),
        ] {
            assert!(!text.contains(PLACEHOLDER), "{name}: placeholder left");
            assert!(text.contains("\"s_test\"."), "{name}: no qualified table");
            for table in ["keys", "leases"] {
                for prefix in ["FROM ", "UPDATE ", "INTO ", "JOIN "] {
                    let bare = format!("{prefix}{table} ");
                    assert!(!text.contains(&bare), "{name}: unqualified `{bare}`");
                }
            }
            // Every statement refuses to touch data outside READ COMMITTED (see the
            // crate docs); the client relies on the gate_ok column.
            assert!(text.contains("AS gate_ok"), "{name}: no gate_ok column");
        }
    }
}
