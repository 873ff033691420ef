#![no_main]
// costsplit::fuzzing::slack_answer must return for any input; see fuzz/README.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| costsplit::fuzzing::slack_answer(data));
