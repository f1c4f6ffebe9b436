//! simile-app's integration tests: the HTTP API through the router (no socket), media safety,
//! and the page in a real browser (Debian's chromium driven over WebDriver).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod api;
mod browser;
mod common;
mod fuzz;
mod media;
