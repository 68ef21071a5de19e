//! Runner: `bench-whisper --help`. Appends one CSV row per measured case.

bench_twin::runner!(bench_whisper::Transcription);
