//! Where a key's state lives: key names, the namespace, and cluster hash slots.

use keylatch::{Error, KeyId};

/// The longest namespace accepted, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// The prefix of every Redis key a store writes, so that several deployments (or
/// test runs) can share one Redis without seeing each other's keys.
///
/// A namespace is 1 to 64 characters from `[A-Za-z0-9_.:-]`. Braces are excluded on
/// purpose: the hash tag of every key must be the key id, and a `{` in the namespace
/// would become the tag instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace.
    pub fn new(ns: &str) -> Result<Self, Error> {
        let ok = !ns.is_empty()
            && ns.len() <= MAX_NAMESPACE_LEN
            && ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Namespace(ns.to_owned()))
        } else {
            Err(Error::InvalidArgument {
                what: "redis namespace must be 1 to 64 characters from [A-Za-z0-9_.:-]",
            })
        }
    }

    /// The namespace text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record hash of a key: `<ns>:{<id>}:rec`.
    pub fn record(&self, id: &KeyId) -> String {
        format!("{}:{{{}}}:rec", self.0, id.as_str())
    }

    /// The lease set of a key: `<ns>:{<id>}:leases`.
    pub fn leases(&self, id: &KeyId) -> String {
        format!("{}:{{{}}}:leases", self.0, id.as_str())
    }

    /// A `SCAN MATCH` pattern for every key a store writes in this namespace,
    /// `<ns>:{*}:*`. The `{` right after `<ns>:` cannot occur in a namespace, so the
    /// pattern matches no key of another namespace that merely starts with this one;
    /// and the namespace alphabet has no glob character, so it stands for itself.
    pub fn keys_pattern(&self) -> String {
        format!("{}:{{*}}:*", self.0)
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace("keylatch".to_owned())
    }
}

/// The Redis Cluster hash slot of a key (0 to 16383): CRC16-XMODEM of its hash tag
/// (the text between the first `{` and the next `}`, when not empty), else of the
/// whole key, modulo 16384. Every key a keylatch script touches has the key id as
/// its tag, so every script runs on one slot.
pub fn cluster_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_redis_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(
            cluster_slot(b"{user1000}.following"),
            cluster_slot(b"user1000")
        );
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(
            cluster_slot(b"foo{}{bar}"),
            crc16_xmodem(b"foo{}{bar}") % 16384
        );
        assert_eq!(cluster_slot(b"foo{{bar}}zap"), cluster_slot(b"{bar"));
    }

    #[test]
    fn namespaces_are_validated() {
        assert!(Namespace::new("keylatch").is_ok());
        assert!(Namespace::new("kl:test-1.a_b").is_ok());
        for bad in ["", "a{b", "a}b", "a b", "é", &"x".repeat(65)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn both_keys_of_an_api_key_share_its_tag() {
        let ns = Namespace::new("ns").expect("valid");
        let id = KeyId::random();
        assert_eq!(ns.record(&id), format!("ns:{{{id}}}:rec"));
        assert_eq!(
            cluster_slot(ns.record(&id).as_bytes()),
            cluster_slot(ns.leases(&id).as_bytes())
        );
        assert_eq!(
            cluster_slot(ns.record(&id).as_bytes()),
            cluster_slot(id.as_str().as_bytes())
        );
    }
}
