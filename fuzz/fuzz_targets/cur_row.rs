#![no_main]
// costsplit::fuzzing::cur_row must return for any input; see fuzz/README.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| costsplit::fuzzing::cur_row(data));
