//! Every download of the set-up, pinned by version and sha256.

use anyhow::Context;
use serde::Deserialize;

/// Where a pinned package comes from, and so which client fetches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// `pip download` (wheels and sdists).
    Pypi,
    /// `npm pack`.
    Npm,
}

/// A package file, fetched by its registry's client and checked by sha256.
#[derive(Clone, Debug)]
pub struct Pinned {
    pub registry: Registry,
    /// `name==version` (PyPI) or `name@version` (npm).
    pub requirement: String,
    /// The file the client saves.
    pub file: String,
    pub sha256: String,
    /// `pip download --platform` tags that select a binary wheel.
    pub platforms: &'static [&'static str],
}

/// A binary wheel from PyPI.
struct Wheel {
    requirement: &'static str,
    file: &'static str,
    sha256: &'static str,
    platforms: &'static [&'static str],
}

impl Wheel {
    fn pinned(&self) -> Pinned {
        Pinned {
            registry: Registry::Pypi,
            requirement: self.requirement.to_owned(),
            file: self.file.to_owned(),
            sha256: self.sha256.to_owned(),
            platforms: self.platforms,
        }
    }
}

const LINUX_X86_64: &[&str] = &[
    "manylinux_2_35_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_25_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
];

/// MLX 0.32.2 for the CPU: libmlx.so, headers, CMake config (and a
/// reference BLAS/LAPACK that set-up replaces by OpenBLAS).
const MLX_CPU: Wheel = Wheel {
    requirement: "mlx-cpu==0.32.2",
    file: "mlx_cpu-0.32.2-py3-none-manylinux_2_35_x86_64.whl",
    sha256: "fc5d31b90fc4f457b2f9614ed45651a567d22a6a11a03d114a90a4e10bdd8878",
    platforms: LINUX_X86_64,
};

/// libtorch 2.11.0, the version tch 0.24.0 is built for. PyPI's Linux
/// wheel is a CUDA 13 build; its CPU library needs only the two NVIDIA
/// runtime libraries below.
const TORCH_LINUX: Wheel = Wheel {
    requirement: "torch==2.11.0",
    file: "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256: "7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a",
    platforms: LINUX_X86_64,
};

const CUDA_RUNTIME: Wheel = Wheel {
    requirement: "nvidia-cuda-runtime==13.0.96",
    file: "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548",
    platforms: LINUX_X86_64,
};

const CUDA_CUPTI: Wheel = Wheel {
    requirement: "nvidia-cuda-cupti==13.0.85",
    file: "nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl",
    sha256: "4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8",
    platforms: LINUX_X86_64,
};

/// The CUDA C runtime headers (`crt/host_config.h` and friends) that
/// `cuda_runtime.h` includes and the runtime wheel leaves out: fw-torch's
/// CUDA graph shim includes libtorch's CUDA headers, which include it.
const CUDA_CRT: Wheel = Wheel {
    requirement: "nvidia-cuda-crt==13.0.88",
    file: "nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4",
    platforms: LINUX_X86_64,
};

/// CUDA's C++ core library headers (`nv/target`, which `cuda_fp16.h`
/// includes), left out of torch's dependencies: fw-torch's CUDA shim
/// compiles c10d's `ProcessGroupNCCL.hpp` against them (and against the
/// `nccl.h` of `nvidia-nccl-cu13`, which torch's metadata pins at 2.28.9).
const CUDA_CCCL: Wheel = Wheel {
    requirement: "nvidia-cuda-cccl==13.0.85",
    file: "nvidia_cuda_cccl-13.0.85-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649",
    platforms: LINUX_X86_64,
};

/// MLX 0.32.2's CUDA 13 build, carried to GPU machines by `cargo xtask
/// bundle --mlx-cuda` (binaries built against mlx-cpu run against it: same
/// headers, same exported symbols).
const MLX_CUDA_13: Wheel = Wheel {
    requirement: "mlx-cuda-13==0.32.2",
    file: "mlx_cuda_13-0.32.2-py3-none-manylinux_2_35_x86_64.whl",
    sha256: "335094ccd1c0c6dc3e09c8caba207c8180602bacc0c38ba20c1d81e9456ab394",
    platforms: LINUX_X86_64,
};

/// MLX's Python package and mlx-lm, for the Python reference run of
/// TinyLlama on GPU machines (their Python is 3.12; libmlx comes from
/// the CUDA payload).
const MLX_PYTHON_CP312: Wheel = Wheel {
    requirement: "mlx==0.32.2",
    file: "mlx-0.32.2-cp312-cp312-manylinux_2_35_x86_64.whl",
    sha256: "8d270ade1e48e006383a6b5f33a3a4ec5c265389299a60a60bf55165af1770d9",
    platforms: &["manylinux_2_35_x86_64"],
};

const MLX_LM: Wheel = Wheel {
    requirement: "mlx-lm==0.32.2",
    file: "mlx_lm-0.32.2-py3-none-any.whl",
    sha256: "5c0991248cfff5872503d74f466d2532dd8cb7fb3670cb9be7a06d7305dadc04",
    platforms: &[],
};

/// mlx-whisper and the one compiled package it needs that the GPU
/// machine's Python lacks (tiktoken, for Python 3.12), for the Whisper
/// reference. Its numba and scipy serve word timestamps only; the
/// reference stands in for them where absent.
const MLX_WHISPER: Wheel = Wheel {
    requirement: "mlx-whisper==0.4.3",
    file: "mlx_whisper-0.4.3-py3-none-any.whl",
    sha256: "6b82b6597a994643a3e5496c7bc229a672e5ca308458455bfe276e76ae024489",
    platforms: &[],
};

const TIKTOKEN_CP312: Wheel = Wheel {
    requirement: "tiktoken==0.14.0",
    file: "tiktoken-0.14.0-cp312-cp312-manylinux_2_28_x86_64.whl",
    sha256: "7896eea257fe497a2b7134474d909156c6744ce8da35bce88011a960e008aa0d",
    platforms: &["manylinux_2_28_x86_64"],
};

/// libtorch 2.11.0 for Apple Silicon (MPS). MLX builds from source there,
/// as upstream mlx-sys does.
const TORCH_MACOS: Wheel = Wheel {
    requirement: "torch==2.11.0",
    file: "torch-2.11.0-cp311-cp311-macosx_11_0_arm64.whl",
    sha256: "7b6a60d48062809f58595509c524b88e6ddec3ebe25833d6462eeab81e5f2ce4",
    platforms: &["macosx_11_0_arm64"],
};

/// A source archive that CMake fetches while mlx-sys builds MLX on macOS,
/// pinned by sha256: set-up downloads and checks it, and the build uses
/// the unpacked folder (`FETCHCONTENT_SOURCE_DIR_<NAME>`) instead of
/// fetching a git tag.
#[derive(Clone, Copy, Debug)]
pub struct SourceArchive {
    /// FetchContent's name of the dependency (`mlx`, `metal_cpp`, ...).
    pub name: &'static str,
    pub url: &'static str,
    /// The file in `.cache/downloads`.
    pub file: &'static str,
    pub sha256: &'static str,
}

/// What the macOS build of mlx-c fetches: MLX itself (mlx-c's
/// CMakeLists.txt, `GIT_TAG v0.32.2`), then what MLX v0.32.2 fetches with
/// Metal on (its CMakeLists.txt: metal-cpp, nlohmann json, fmt;
/// mlx/io/CMakeLists.txt: gguflib). Where each sha256 was published:
/// MLX's tag archive in other projects' build pins (Homebrew's formula
/// went from 0.32.1 to 0.32.3); metal-cpp and gguflib in Homebrew's mlx
/// formula; json and fmt in several projects' CMake pins of these files.
pub const MLX_MACOS_SOURCES: [SourceArchive; 5] = [
    SourceArchive {
        name: "mlx",
        url: "https://github.com/ml-explore/mlx/archive/refs/tags/v0.32.2.tar.gz",
        file: "mlx-0.32.2.tar.gz",
        sha256: "bf892386ccac1d249acc9da21574fd7b95a995f4c58b03310105fe05f077b175",
    },
    SourceArchive {
        name: "metal_cpp",
        url: "https://developer.apple.com/metal/cpp/files/metal-cpp_26.zip",
        file: "metal-cpp_26.zip",
        sha256: "4df3c078b9aadcb516212e9cb03004cbc5ce9a3e9c068fa3144d021db585a3a4",
    },
    SourceArchive {
        name: "json",
        url: "https://github.com/nlohmann/json/releases/download/v3.11.3/json.tar.xz",
        file: "nlohmann-json-3.11.3.tar.xz",
        sha256: "d6c65aca6b1ed68e7a182f4757257b107ae403032760ed6ef121c9d55e81757d",
    },
    SourceArchive {
        name: "fmt",
        url: "https://github.com/fmtlib/fmt/archive/refs/tags/12.1.0.tar.gz",
        file: "fmt-12.1.0.tar.gz",
        sha256: "ea7de4299689e12b6dddd392f9896f08fb0777ac7168897a244a6d6085043fea",
    },
    SourceArchive {
        name: "gguflib",
        url: "https://github.com/antirez/gguf-tools/archive/8fa6eb65236618e28fd7710a0fba565f7faa1848.tar.gz",
        file: "gguf-tools-8fa6eb65236618e28fd7710a0fba565f7faa1848.tar.gz",
        sha256: "9e30bc1eb82cc2231150d39ce37dcdd6f844d6994fba18da83fc537a487ba86f",
    },
];

/// Folder under `.cache/` of the unpacked [`MLX_MACOS_SOURCES`].
pub const MLX_SOURCES_DIR: &str = "mlx-src-0.32.2";

/// Debian packages the build needs: cmake (mlx-c), libclang-dev (bindgen),
/// OpenBLAS (MLX's CPU BLAS and LAPACK).
pub const DEBIAN_PACKAGES: &[&str] = &["cmake", "libclang-dev", "libopenblas0-pthread"];

/// Debian packages the tests need besides: Chromium, the headless browser
/// that renders the HTML report (`report --run ID --html FILE`) in its test.
pub const TEST_DEBIAN_PACKAGES: &[&str] = &["chromium"];

/// Where Debian's OpenBLAS (BLAS and LAPACK in one library) is found.
pub const OPENBLAS_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
];

/// The first of [`OPENBLAS_CANDIDATES`] that exists.
pub fn find_openblas() -> anyhow::Result<&'static std::path::Path> {
    OPENBLAS_CANDIDATES
        .iter()
        .map(std::path::Path::new)
        .find(|path| path.exists())
        .with_context(|| {
            format!(
                "OpenBLAS not found at {}: install the Debian package libopenblas0-pthread",
                OPENBLAS_CANDIDATES.join(" or ")
            )
        })
}

/// The MLX release every MLX pin here is of.
pub const MLX_VERSION: &str = "0.32.2";

/// Folder names under `.cache/`; `.cargo/config.toml` names the same.
pub const MLX_DIR: &str = "mlx-0.32.2";
pub const LIBTORCH_DIR: &str = "libtorch-2.11.0";

pub fn mlx_cpu() -> Pinned {
    MLX_CPU.pinned()
}

pub fn torch_linux() -> Pinned {
    TORCH_LINUX.pinned()
}

pub fn torch_macos() -> Pinned {
    TORCH_MACOS.pinned()
}

/// The two NVIDIA libraries that the CPU part of PyPI's libtorch links,
/// and the CUDA headers that fw-torch's CUDA graph shim compiles against.
pub fn cuda_runtime_libraries() -> [Pinned; 3] {
    [
        CUDA_RUNTIME.pinned(),
        CUDA_CUPTI.pinned(),
        CUDA_CRT.pinned(),
    ]
}

/// The CUDA headers beyond torch's own dependencies (see [`CUDA_CRT`] and
/// [`CUDA_CCCL`]).
pub fn cuda_headers() -> [Pinned; 2] {
    [CUDA_CRT.pinned(), CUDA_CCCL.pinned()]
}

pub fn mlx_cuda_13() -> Pinned {
    MLX_CUDA_13.pinned()
}

/// Wheels for the Python references of a bundle.
pub fn reference_wheels() -> [Pinned; 4] {
    [
        MLX_PYTHON_CP312.pinned(),
        MLX_LM.pinned(),
        MLX_WHISPER.pinned(),
        TIKTOKEN_CP312.pinned(),
    ]
}

/// Zig 0.17.0 from PyPI, the C compiler of `cargo xtask check-macos` on
/// x86_64 Linux: `zig cc -target aarch64-macos` has macOS's libc headers.
pub fn ziglang() -> Pinned {
    Wheel {
        requirement: "ziglang==0.17.0",
        file: "ziglang-0.17.0-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl",
        sha256: "97079827064a7492cce5541ceb438ae8003ce1e54e399676da2d62fb7a5dc08b",
        platforms: &["manylinux_2_12_x86_64"],
    }
    .pinned()
}
