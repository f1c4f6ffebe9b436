//! The shared conformance suite, against the real server.
simile_index::conformance_tests!(|metric| crate::common::index(metric));
