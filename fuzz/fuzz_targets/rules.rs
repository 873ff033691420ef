#![no_main]
// costsplit::fuzzing::rules must return for any input; see fuzz/README.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| costsplit::fuzzing::rules(data));
