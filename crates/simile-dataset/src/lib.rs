//! simile-dataset
