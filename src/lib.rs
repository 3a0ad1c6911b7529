//! cio-ratelimit (work in progress).
