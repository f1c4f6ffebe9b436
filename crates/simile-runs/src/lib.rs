//! simile-runs
