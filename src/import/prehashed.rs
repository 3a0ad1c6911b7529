//! `Prehashed`: hash maps and sets whose keys are hashes already (a person's
//! key, a line's digest) use them as they are, instead of hashing them again.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds a [`PassThrough`] hasher: for maps keyed by `u64` hashes.
pub(crate) type Prehashed = BuildHasherDefault<PassThrough>;

/// Hands a `u64` key back as its own hash.
#[derive(Debug, Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is meant; anything else still hashes, if slowly.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}
