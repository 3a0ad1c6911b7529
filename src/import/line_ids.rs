//! The ids an import gives events that have none (and Pipelines calls
//! without a `messageId`): derived from the line's own bytes and the number
//! of identical lines before it, so that they stay the same when anything
//! else in the input changes.

use std::collections::{HashMap, HashSet};

use crate::client::event_id::EventId;
use crate::import::content_digest::ContentDigest;
use crate::import::prehashed::Prehashed;

/// Gives lines their ids, and remembers the lines it gave one to.
///
/// The key of a line's id is `{namespace}:{digest of the line}:{n}`, `n`
/// being the number of identical lines (the same bytes, line end aside)
/// given an id before it. A line's id thus depends on nothing but itself
/// and its twins before it: fixing, removing or adding other lines, or
/// appending to the input, leaves it as it was, so a re-import counts every
/// event once.
///
/// # Memory
///
/// One remembered line costs a 64-bit digest in a hash set (9 bytes a slot,
/// at most twice the slots it needs): a million distinct lines given ids
/// take 9 to 19 MB, up to 28 MB while the set doubles, and a line seen more
/// than once 17 bytes more. Measured: a dry run of a million events without
/// ids peaks at 45 MB of RSS, of a million identifies at 19 MB. Lines that
/// need no id (identifies, events with their own) are not remembered.
#[derive(Debug)]
pub(crate) struct LineIds {
    namespace: String,
    /// The lines given an id, by their 64-bit digest.
    seen: HashSet<u64, Prehashed>,
    /// How many times each line given an id more than once was given one
    /// after its first.
    repeats: HashMap<u64, u32, Prehashed>,
}

/// What gives one line its id: which line it is, and how many twins came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineKey {
    digest: ContentDigest,
    before: u32,
}

impl LineIds {
    /// Ids in `namespace` (the import's id): imports in other namespaces
    /// give the same lines other ids.
    pub(crate) fn new(namespace: String) -> LineIds {
        LineIds {
            namespace,
            seen: HashSet::default(),
            repeats: HashMap::default(),
        }
    }

    /// The key of `line`'s id (its bytes without the line end), were it
    /// given one now; nothing is remembered until [`LineIds::given`].
    pub(crate) fn key(&self, line: &[u8]) -> LineKey {
        let mut digest = ContentDigest::default();
        digest.update(line);
        let short = digest.short();
        let before = match self.seen.contains(&short) {
            false => 0,
            true => 1 + self.repeats.get(&short).copied().unwrap_or(0),
        };
        LineKey { digest, before }
    }

    /// The id `key` stands for.
    pub(crate) fn id(&self, key: LineKey) -> EventId {
        let text = self.key_bytes(key);
        EventId::from_key(std::str::from_utf8(&text).expect("ASCII around a UTF-8 namespace"))
    }

    /// The text [`LineIds::id`] derives the id of `key` from.
    pub(crate) fn key_text(&self, key: LineKey) -> String {
        String::from_utf8(self.key_bytes(key)).expect("ASCII around a UTF-8 namespace")
    }

    /// `{namespace}:{digest}:{before}`, written without `format!`: an
    /// import writes one per event.
    fn key_bytes(&self, key: LineKey) -> Vec<u8> {
        let mut text = Vec::with_capacity(self.namespace.len() + 44);
        text.extend_from_slice(self.namespace.as_bytes());
        text.push(b':');
        text.extend_from_slice(&key.digest.to_hex());
        text.push(b':');
        let mut digits = [0; 10];
        let mut rest = key.before;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        text.extend_from_slice(&digits[start..]);
        text
    }

    /// Remembers that the line of `key` was given its id.
    pub(crate) fn given(&mut self, key: LineKey) {
        let short = key.digest.short();
        if !self.seen.insert(short) {
            *self.repeats.entry(short).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of `lines`, each given one in turn.
    fn ids(namespace: &str, lines: &[&str]) -> Vec<EventId> {
        let mut ids = LineIds::new(namespace.into());
        lines
            .iter()
            .map(|line| {
                let key = ids.key(line.as_bytes());
                ids.given(key);
                ids.id(key)
            })
            .collect()
    }

    #[test]
    fn the_key_text_is_namespace_digest_and_twins_before() {
        let ids = LineIds::new("import-7".into());
        let mut digest = ContentDigest::default();
        digest.update(b"a line");
        for before in [0, 7, 10, 4_294_967_295] {
            assert_eq!(
                ids.key_text(LineKey { digest, before }),
                format!("import-7:{digest}:{before}")
            );
        }
    }

    #[test]
    fn a_lines_id_depends_on_its_bytes_and_its_twins_before_it_only() {
        let first = ids("n", &["a", "b", "a", "c", "a"]);
        assert_eq!(first.len(), 5);
        assert_ne!(first[0], first[2], "twins get ids of their own");
        assert_ne!(first[2], first[4]);
        // Fixing "b", removing "c", adding lines: the others keep their ids.
        let second = ids("n", &["new", "a", "B", "a", "a", "d"]);
        assert_eq!(second[1], first[0]);
        assert_eq!(second[3], first[2]);
        assert_eq!(second[4], first[4]);
        assert_ne!(second[2], first[1]);
        assert_ne!(ids("other", &["a"])[0], first[0], "namespaces keep apart");
    }

    #[test]
    fn a_key_counts_only_once_given() {
        let mut ids = LineIds::new("n".into());
        let key = ids.key(b"a");
        assert_eq!(ids.key(b"a"), key, "looking is not giving");
        ids.given(key);
        assert_ne!(ids.key(b"a"), key);
    }
}
