//! Every input saved under `tests/data/fuzz/<target>/` (the seeds, and each crash the fuzz
//! targets found, once fixed) goes through its target's entry point on every test run, so a
//! fixed crash stays fixed without running the fuzzer.

#[test]
fn every_saved_fuzz_input_returns() {
    let mut replayed = 0;
    for (name, target) in costsplit::fuzzing::TARGETS {
        let dir = crate::support::data(&format!("fuzz/{name}"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has no seed inputs");
        for file in files {
            let input = std::fs::read(&file).expect("read");
            target(&input);
            replayed += 1;
        }
    }
    assert!(replayed >= 10);
}

/// The README says each damaged parquet file the fuzzer found "returns an error": it does,
/// one that says the file is damaged and to export it again (not a panic, not an empty
/// import).
#[test]
fn the_damaged_parquet_inputs_are_refused_as_damaged() {
    for name in ["abort-during-unwind", "corrupt-thrift-bool"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(format!("{name}.parquet"));
        std::fs::copy(crate::support::data(&format!("fuzz/parquet/{name}")), &file).expect("copy");
        let err = match costsplit::ingest::read_files(&[file]) {
            Ok(imported) => panic!("{name} imported {} facts", imported.facts.len()),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("the parquet file is damaged") && err.contains("export it again"),
            "{name}: {err}"
        );
    }
}
