//! The key format, key identifiers, and the digests the stores keep.
//!
//! A key reads `<prefix>_<id>_<secret><check>`:
//! - `prefix`: `[a-z][a-z0-9]{0,15}`, chosen per deployment (default `kl`), so that
//!   secret scanners can recognise leaked keys;
//! - `id`: [`ID_LEN`] base62 characters (over 71 random bits), the public identifier;
//! - `secret`: [`SECRET_LEN`] base62 characters (over 196 random bits);
//! - `check`: [`CHECK_LEN`] base62 characters of a CRC-32 over everything before it,
//!   so that typos and garbage are rejected before any I/O.
//!
//! Stores keep only a SHA-256 digest of the whole key (HMAC-SHA256 with a server-side
//! pepper when one is configured) and compare digests, never plaintext.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Length of the public identifier, in base62 characters.
pub const ID_LEN: usize = 12;
/// Length of the secret part, in base62 characters.
pub const SECRET_LEN: usize = 33;
/// Length of the checksum, in base62 characters.
pub const CHECK_LEN: usize = 6;
/// Longest prefix allowed.
pub const MAX_PREFIX_LEN: usize = 16;
/// Longest well-formed key; anything longer is rejected without further reading.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN;
/// The prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "kl";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` uniformly random base62 characters from the operating system's random
/// source, read in one call per 64 bytes rather than one per character.
pub(crate) fn random_base62(len: usize) -> String {
    // 248 = 4 * 62: bytes at or above it are dropped so that `b % 62` stays uniform.
    const LIMIT: u8 = 248;
    let mut out = String::with_capacity(len);
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        OsRng.fill_bytes(buf.as_mut());
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn checksum(body: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// A validated key prefix: `[a-z][a-z0-9]{0,15}`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Validates a prefix.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        let mut bytes = prefix.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if first_ok && rest_ok && prefix.len() <= MAX_PREFIX_LEN {
            Ok(Prefix(prefix.to_owned()))
        } else {
            Err(Error::InvalidArgument {
                what: "key prefix must match [a-z][a-z0-9]{0,15}",
            })
        }
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix(DEFAULT_PREFIX.to_owned())
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({})", self.0)
    }
}

/// The public identifier of a key: [`ID_LEN`] base62 characters. It is not secret
/// and appears in logs, audit events and errors.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random identifier.
    pub fn random() -> Self {
        KeyId(random_base62(ID_LEN))
    }

    /// Validates an identifier given as text (from an admin tool, say).
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == ID_LEN && is_base62(s) {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(Error::InvalidArgument {
                what: "key id must be 12 base62 characters",
            })
        }
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        KeyId::parse(s)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// A plaintext API key, handed out once by `issue` and `rotate`.
///
/// `Debug` and `Display` show only the id; the memory is wiped on drop.
/// Call [`ApiKey::expose_secret`] to hand the key to its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    text: Zeroizing<String>,
    id: KeyId,
}

impl ApiKey {
    /// The full key text, secret included. Give it to the key's owner; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The key's public identifier.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}_…redacted)", self.id)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_…redacted", self.id)
    }
}

/// The digest a store keeps in place of a key: SHA-256, or HMAC-SHA256 with a pepper.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(…)")
    }
}

/// Why a presented key is malformed. Every variant is decided without I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedKey {
    /// Longer than [`MAX_KEY_LEN`] bytes.
    TooLong,
    /// Contains a byte outside printable ASCII.
    NotAscii,
    /// Not three `_`-separated parts of the right lengths and alphabet.
    Shape,
    /// The prefix is not this deployment's.
    WrongPrefix,
    /// The checksum does not match.
    BadChecksum,
}

/// A presented key that passed the format checks: its id and digest.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    /// The public identifier named by the key.
    pub id: KeyId,
    /// The digest to compare with the stored one.
    pub digest: KeyDigest,
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A key minted by [`KeyCodec::generate`]: the plaintext and what the store keeps.
#[derive(Debug, Clone)]
pub struct MintedKey {
    /// The plaintext key, to hand out once.
    pub key: ApiKey,
    /// Its digest, to store.
    pub digest: KeyDigest,
}

/// Mints, parses and digests keys for one deployment: its prefix and optional pepper.
///
/// Every backend holds one; two handles on the same data must use the same codec.
#[derive(Clone, Default)]
pub struct KeyCodec {
    prefix: Prefix,
    pepper: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for KeyCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCodec")
            .field("prefix", &self.prefix)
            .field("pepper", &self.pepper.as_ref().map(|_| "…redacted"))
            .finish()
    }
}

impl KeyCodec {
    /// A codec with the given prefix and no pepper (plain SHA-256 digests).
    pub fn new(prefix: Prefix) -> Self {
        KeyCodec {
            prefix,
            pepper: None,
        }
    }

    /// Digests keys with HMAC-SHA256 under `pepper`, a server-side secret kept out of
    /// the store, so that a leaked table of digests cannot be checked offline.
    pub fn with_pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(Zeroizing::new(pepper.into()));
        self
    }

    /// The prefix of keys this codec mints and accepts.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// Mints a new key for `id` from the operating system's random source.
    pub fn generate(&self, id: &KeyId) -> MintedKey {
        let mut text = String::with_capacity(MAX_KEY_LEN);
        text.push_str(self.prefix.as_str());
        text.push('_');
        text.push_str(id.as_str());
        text.push('_');
        let mut secret = random_base62(SECRET_LEN);
        text.push_str(&secret);
        secret.zeroize();
        let check = checksum(&text);
        text.extend(check.iter().map(|&b| b as char));
        let text = Zeroizing::new(text);
        let digest = self.digest_text(&text);
        MintedKey {
            key: ApiKey {
                text,
                id: id.clone(),
            },
            digest,
        }
    }

    /// Checks the format of a presented key and digests it. Decided without I/O; the
    /// length is checked before anything else is read.
    pub fn parse(&self, key: &str) -> Result<PresentedKey, MalformedKey> {
        if key.len() > MAX_KEY_LEN {
            return Err(MalformedKey::TooLong);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MalformedKey::NotAscii);
        }
        let mut parts = key.splitn(3, '_');
        let (Some(prefix), Some(id), Some(tail)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedKey::Shape);
        };
        if id.len() != ID_LEN
            || tail.len() != SECRET_LEN + CHECK_LEN
            || !is_base62(id)
            || !is_base62(tail)
        {
            return Err(MalformedKey::Shape);
        }
        if prefix != self.prefix.as_str() {
            return Err(MalformedKey::WrongPrefix);
        }
        let body_len = key.len() - CHECK_LEN;
        if checksum(&key[..body_len]).as_slice() != &key.as_bytes()[body_len..] {
            return Err(MalformedKey::BadChecksum);
        }
        Ok(PresentedKey {
            id: KeyId(id.to_owned()),
            digest: self.digest_text(key),
        })
    }

    fn digest_text(&self, text: &str) -> KeyDigest {
        match &self.pepper {
            None => KeyDigest(Sha256::digest(text.as_bytes()).into()),
            Some(pepper) => {
                // HMAC accepts keys of every length, so this cannot fail.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(text.as_bytes());
                KeyDigest(mac.finalize().into_bytes().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> KeyCodec {
        KeyCodec::default()
    }

    #[test]
    fn generated_keys_parse_back_to_their_id_and_digest() {
        let c = codec();
        let id = KeyId::random();
        let minted = c.generate(&id);
        let text = minted.key.expose_secret();
        assert!(text.starts_with("kl_"));
        assert_eq!(text.len(), 2 + 1 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN);
        let parsed = c.parse(text).expect("well-formed");
        assert_eq!(parsed.id, id);
        assert!(parsed.digest.ct_eq(&minted.digest));
    }

    #[test]
    fn two_keys_for_one_id_differ() {
        let c = codec();
        let id = KeyId::random();
        let a = c.generate(&id);
        let b = c.generate(&id);
        assert_ne!(a.key.expose_secret(), b.key.expose_secret());
        assert!(!a.digest.ct_eq(&b.digest));
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let c = codec();
        let key = c.generate(&KeyId::random()).key;
        let text = key.expose_secret();
        for i in 0..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(c.parse(&changed).is_err(), "change at {i} accepted");
        }
    }

    #[test]
    fn malformed_inputs_are_classified() {
        let c = codec();
        let good = c.generate(&KeyId::random()).key;
        let text = good.expose_secret();
        assert_eq!(c.parse(&"a".repeat(1 << 20)), Err(MalformedKey::TooLong));
        assert_eq!(c.parse(""), Err(MalformedKey::Shape));
        assert_eq!(c.parse(&text[..text.len() - 1]), Err(MalformedKey::Shape));
        assert_eq!(c.parse("kl_é_x"), Err(MalformedKey::NotAscii));
        assert_eq!(c.parse("kl_abc def"), Err(MalformedKey::NotAscii));
        let other = KeyCodec::new(Prefix::new("other").expect("valid"));
        assert_eq!(other.parse(text), Err(MalformedKey::WrongPrefix));
        let mut bad_check = text.to_owned();
        bad_check.pop();
        bad_check.push(if text.ends_with('0') { '1' } else { '0' });
        assert_eq!(c.parse(&bad_check), Err(MalformedKey::BadChecksum));
        assert_eq!(c.parse("kl__"), Err(MalformedKey::Shape));
        assert_eq!(c.parse("kl_a_b_c"), Err(MalformedKey::Shape));
    }

    #[test]
    fn random_base62_is_base62_of_the_asked_length_and_varies() {
        for len in [0, 1, 12, 33, 64, 200] {
            let s = random_base62(len);
            assert_eq!(s.len(), len);
            assert!(is_base62(&s));
        }
        assert_ne!(random_base62(33), random_base62(33));
        // Every character of the alphabet turns up: the mapping covers all 62.
        let many = random_base62(62 * 64);
        assert!(BASE62.iter().all(|&c| many.as_bytes().contains(&c)));
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Prefix::new("kl").is_ok());
        assert!(Prefix::new("a1b2c3d4e5f6g7h8").is_ok());
        for bad in ["", "1a", "Kl", "k_l", "a1b2c3d4e5f6g7h8x", "ké"] {
            assert!(Prefix::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::parse("abcdefABCDEF").is_ok());
        for bad in ["", "abc", "abcdefABCDE_", "abcdefABCDEFG"] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pepper_changes_the_digest() {
        let plain = codec();
        let peppered = codec().with_pepper(b"pepper".to_vec());
        let minted = peppered.generate(&KeyId::random());
        let text = minted.key.expose_secret();
        assert!(peppered
            .parse(text)
            .expect("ok")
            .digest
            .ct_eq(&minted.digest));
        assert!(!plain.parse(text).expect("ok").digest.ct_eq(&minted.digest));
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let c = codec().with_pepper(b"hunter2-pepper".to_vec());
        let minted = c.generate(&KeyId::random());
        let text = minted.key.expose_secret().to_owned();
        let secret = &text[text.len() - SECRET_LEN - CHECK_LEN..];
        let presented = c.parse(&text).expect("ok");
        for shown in [
            format!("{:?}", minted.key),
            format!("{}", minted.key),
            format!("{minted:?}"),
            format!("{presented:?}"),
            format!("{c:?}"),
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
