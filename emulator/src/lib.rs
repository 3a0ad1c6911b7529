//! A local Customer.io-compatible server (work in progress).
