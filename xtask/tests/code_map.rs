//! `ARCHITECTURE.md`'s code map names every source file of the harness: a file added to
//! `xtask/src` without a row (its own, or its directory's row naming its module) fails here,
//! so the map a newcomer reads cannot silently fall behind the code.

use std::path::{Path, PathBuf};

/// The rows of the code map: the text of the "where" cell and of the whole row.
fn code_map_rows() -> Vec<(String, String)> {
    let architecture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let text = std::fs::read_to_string(&architecture).expect("ARCHITECTURE.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            let place = cells.get(1)?.trim();
            place
                .starts_with('`')
                .then(|| (place.to_owned(), line.to_owned()))
        })
        .collect()
}

fn source_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Whether a row covers `relative` (`xtask/src/...`): a row whose "where" names the file, or
/// the directory's row naming the module in backticks (`mod.rs` by the directory row itself).
fn covered(relative: &str, rows: &[(String, String)]) -> bool {
    let (directory, file) = relative.rsplit_once('/').unwrap();
    let module = file.trim_end_matches(".rs");
    rows.iter().any(|(place, row)| {
        place.contains(&format!("`{relative}`"))
            || (place.contains(&format!("`{directory}/`"))
                && (module == "mod" || row.contains(&format!("`{module}`"))))
    })
}

#[test]
fn every_source_file_of_the_harness_is_in_the_code_map() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = code_map_rows();
    assert!(rows.len() > 20, "no code map found: {rows:?}");
    let mut files = Vec::new();
    source_files(&manifest_dir.join("src"), &mut files);
    let mut missing: Vec<String> = files
        .iter()
        .map(|file| {
            format!(
                "xtask/{}",
                file.strip_prefix(manifest_dir).unwrap().display()
            )
        })
        .filter(|relative| !covered(relative, &rows))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map lacks {missing:?}: add a row for each (or name the module in its directory's row)"
    );
}

#[test]
fn a_file_is_covered_by_its_own_row_or_by_its_directory_row_naming_it() {
    let rows = vec![
        (
            "`xtask/src/main.rs`".to_owned(),
            "| `xtask/src/main.rs` | x |".to_owned(),
        ),
        (
            "`xtask/src/suites/`".to_owned(),
            "| `xtask/src/suites/` | `build_guard` and more |".to_owned(),
        ),
    ];
    assert!(covered("xtask/src/main.rs", &rows));
    assert!(covered("xtask/src/suites/build_guard.rs", &rows));
    assert!(covered("xtask/src/suites/mod.rs", &rows));
    assert!(!covered("xtask/src/suites/paired.rs", &rows));
    assert!(!covered("xtask/src/exit.rs", &rows));
}
