//! simile-sklearn
