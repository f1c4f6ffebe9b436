//! Integration tests of simile-io on temporary directories.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
mod coco;
mod common;
mod fiftyone;
mod fuzz;
mod image_dir;
mod quickstart;
mod reliability;
