//! simile
