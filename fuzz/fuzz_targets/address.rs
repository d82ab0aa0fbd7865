//! Address resolution against the bundled Lanshan County directory on any
//! text: it never panics, and a resolved grid is one of the directory's.

#![no_main]

use std::sync::LazyLock;

use daiban_domain::{CountyCode, Directory};
use libfuzzer_sys::fuzz_target;

static DIRECTORY: LazyLock<Directory> = LazyLock::new(Directory::lanshan_demo);

fuzz_target!(|text: &str| {
    let county = CountyCode::parse("431127").ok();
    for scope in [None, county.as_ref()] {
        if let Some(grid) = DIRECTORY.resolve_address(text, scope) {
            assert!(
                DIRECTORY.grids().any(|g| g.code == grid),
                "{grid} is not a grid of the directory"
            );
        }
    }
});
