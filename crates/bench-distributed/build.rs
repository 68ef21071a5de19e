fn main() {
    bench_build::link_runtime_libraries();
}
