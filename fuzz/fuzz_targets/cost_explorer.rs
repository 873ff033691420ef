#![no_main]
// costsplit::fuzzing::cost_explorer must return for any input; see fuzz/README.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| costsplit::fuzzing::cost_explorer(data));
