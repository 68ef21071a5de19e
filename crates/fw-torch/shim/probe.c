// A library with one function, for fw-torch's tests: it is opened the way
// the CUDA graph shim is (graph.rs, `open_library_bytes`), without CUDA.
int fwt_probe(void) { return 42; }
