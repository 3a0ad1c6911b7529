//! A digest of bytes: of the input read so far, so that a resume can tell
//! that the lines before its checkpoint are the ones the checkpoint was kept
//! for; and of one line, for the id an event without one gets.

use std::fmt;

/// FNV-1a over 128 bits of every byte read, line ends included. Not
/// cryptographic: it tells apart inputs that differ by accident, which is
/// all a resume and an event id need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentDigest(u128);

impl ContentDigest {
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    /// Adds `bytes`, read after everything added so far.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u128::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The digest folded to 64 bits, for a set of digests.
    pub(crate) fn short(self) -> u64 {
        (self.0 ^ (self.0 >> 64)) as u64
    }

    /// Its text, as `Display` writes it (32 lowercase hex digits), without
    /// the formatting machinery: an import makes one per event.
    pub(crate) fn to_hex(self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0; 32];
        for (i, digit) in text.iter_mut().enumerate() {
            *digit = HEX[(self.0 >> (4 * (31 - i)) & 0xF) as usize];
        }
        text
    }

    /// Reads one back from its text (as `Display` writes it).
    pub(crate) fn parse(text: &str) -> Option<ContentDigest> {
        if text.len() != 32 {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(ContentDigest)
    }
}

impl Default for ContentDigest {
    /// The digest of nothing.
    fn default() -> ContentDigest {
        ContentDigest(0x6c62272e07bb014262b821756295c58d)
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(parts: &[&str]) -> ContentDigest {
        let mut digest = ContentDigest::default();
        for part in parts {
            digest.update(part.as_bytes());
        }
        digest
    }

    #[test]
    fn the_same_bytes_give_the_same_digest_however_they_are_split() {
        assert_eq!(digest(&["ab\n", "c\n"]), digest(&["a", "b\nc\n"]));
        assert_ne!(digest(&["ab\n", "c\n"]), digest(&["ab\n", "d\n"]));
        assert_ne!(digest(&["a\n"]), digest(&["a\r\n"]));
    }

    #[test]
    fn a_digest_reads_back_from_its_text() {
        let one = digest(&["line\n"]);
        assert_eq!(one.to_hex(), one.to_string().as_bytes());
        assert_eq!(ContentDigest::parse(&one.to_string()), Some(one));
        assert_eq!(ContentDigest::parse("xyz"), None);
        assert_eq!(ContentDigest::parse(&"g".repeat(32)), None);
    }
}
