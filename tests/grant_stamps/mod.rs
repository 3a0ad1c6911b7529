//! Counting permits in a window from stamps taken around `acquire`, so that
//! a loaded machine never makes a limiter look as if it granted too many.

use std::ops::Add;

/// The most permits that surely fell in one `window`: each permit is known
/// only to lie between a stamp taken before `acquire` and one taken after,
/// and a window holds a permit for certain only when it holds both stamps.
/// Stamps taken after `acquire` alone come late on a loaded machine and
/// bunch up; these never count more than were granted, and a limiter that
/// grants too many still fails (its callers hardly wait, so their intervals
/// are short). `grants` are `(asked, granted)` pairs sorted by `asked`.
pub fn most_surely_in_window<T, W>(grants: &[(T, T)], window: W) -> usize
where
    T: Copy + Ord + Add<W, Output = T>,
    W: Copy,
{
    (0..grants.len())
        .map(|first| {
            let end = grants[first].0 + window;
            grants[first..]
                .iter()
                .take_while(|(asked, _)| *asked <= end)
                .filter(|(_, granted)| *granted <= end)
                .count()
        })
        .max()
        .unwrap_or(0)
}
