//! The ids an import gives the lines that bring none: an event's `id`, a
//! Pipelines call's `messageId`. The derivation is pinned here, apart from
//! the library's: ids that changed between versions would count every
//! re-imported event twice.

use cio_ratelimit::client::EventId;

/// The id an import with `import_id` gives the line `text` that has none,
/// after `before` identical lines: from the line's FNV-1a 128 digest.
pub fn line_id(import_id: &str, text: &str, before: u32) -> String {
    let mut digest: u128 = 0x6c62272e07bb014262b821756295c58d;
    for &byte in text.as_bytes() {
        digest ^= u128::from(byte);
        digest = digest.wrapping_mul(0x0000000001000000000000000000013B);
    }
    EventId::from_key(&format!("{import_id}:{digest:032x}:{before}")).to_string()
}
