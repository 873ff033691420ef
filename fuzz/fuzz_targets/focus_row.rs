#![no_main]
// costsplit::fuzzing::focus_row must return for any input; see fuzz/README.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| costsplit::fuzzing::focus_row(data));
