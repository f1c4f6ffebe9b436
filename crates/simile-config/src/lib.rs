//! simile-config
