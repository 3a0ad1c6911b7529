//! Event ids: ULIDs, random or derived from a key, so Customer.io can drop repeats.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 alphabet, as ULIDs use it.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// An event's id: a [ULID](https://github.com/ulid/spec).
///
/// Customer.io ignores an event whose id it has already seen, so an event
/// that is retried, or re-sent after a crash, is counted once — as long as it
/// carries the same id every time. Every event this crate sends carries one.
///
/// ```
/// use cio_ratelimit::client::EventId;
///
/// let random = EventId::new();
/// assert_eq!(random.as_str().len(), 26);
///
/// // The same key gives the same id, in every process, on every run.
/// assert_eq!(EventId::from_key("order-1234/paid"), EventId::from_key("order-1234/paid"));
/// assert_ne!(EventId::from_key("order-1234/paid"), EventId::from_key("order-1235/paid"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    /// A new id: the current time in milliseconds and 80 random bits.
    pub fn new() -> EventId {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        let time = (millis & ((1 << 48) - 1)) << 80;
        let random =
            (u128::from(fastrand::u64(..)) << 16 | u128::from(fastrand::u16(..))) & ((1 << 80) - 1);
        EventId::from_u128(time | random)
    }

    /// An id derived from `key` alone: the same key always gives the same id.
    ///
    /// Use a key that names the event uniquely, such as an order number and
    /// what happened to it. The derivation (FNV-1a 128 with a final mix) is
    /// fixed and will not change between versions of this crate.
    pub fn from_key(key: &str) -> EventId {
        EventId::from_u128(stable_hash(key.as_bytes()))
    }

    /// The id as text: 26 characters of Crockford base32.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_u128(value: u128) -> EventId {
        let text = (0..26)
            .rev()
            .map(|i| char::from(ALPHABET[(value >> (5 * i)) as usize & 31]))
            .collect();
        EventId(text)
    }
}

impl Default for EventId {
    fn default() -> EventId {
        EventId::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> String {
        id.0
    }
}

/// FNV-1a over 128 bits, then a multiply-xorshift finish so that keys
/// differing only at the end still differ in every output bit.
fn stable_hash(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for &byte in bytes {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash ^= hash >> 67;
    hash = hash.wrapping_mul(0x9E3779B97F4A7C15F39CC0605CEDC835);
    hash ^= hash >> 61;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_ulid(text: &str) -> bool {
        text.len() == 26
            && text.as_bytes()[0] <= b'7'
            && text.bytes().all(|b| ALPHABET.contains(&b))
    }

    #[test]
    fn ids_are_valid_ulids() {
        for _ in 0..100 {
            assert!(is_ulid(EventId::new().as_str()));
        }
        assert!(is_ulid(EventId::from_key("").as_str()));
        assert_eq!(
            EventId::from_u128(u128::MAX).as_str(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(EventId::from_u128(0).as_str(), "00000000000000000000000000");
    }

    #[test]
    fn new_ids_sort_by_time_and_do_not_repeat() {
        let ids: Vec<EventId> = (0..10_000).map(|_| EventId::new()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        let before = EventId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(EventId::new().as_str()[..10] > before.as_str()[..10]);
    }

    #[test]
    fn keyed_ids_are_fixed_forever() {
        // Pinned: a resumed import must give the same line the same id,
        // whatever version of the crate runs it.
        assert_eq!(
            EventId::from_key("import-1:line-1").as_str(),
            EventId::from_key("import-1:line-1").as_str()
        );
        let pinned = EventId::from_key("cio-ratelimit");
        assert_eq!(pinned.as_str(), PINNED_CIO_RATELIMIT);
    }

    const PINNED_CIO_RATELIMIT: &str = "1SSPRP8CY40F3D3C2YKS6YHJ3P";

    #[test]
    fn similar_keys_give_unrelated_ids() {
        let ids: HashSet<EventId> = (0..100_000)
            .map(|i| EventId::from_key(&format!("line-{i}")))
            .collect();
        assert_eq!(ids.len(), 100_000);
        let (a, b) = (EventId::from_key("line-1"), EventId::from_key("line-2"));
        let same = a
            .as_str()
            .bytes()
            .zip(b.as_str().bytes())
            .filter(|(x, y)| x == y)
            .count();
        assert!(same < 8, "{a} vs {b}");
    }
}
