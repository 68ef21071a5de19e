//! CUDA graphs for tch: capture a piece of work once, replay it as one
//! launch (what `torch.cuda.graph` and `torch.compile(mode=
//! "reduce-overhead")` do for PyTorch users).
//!
//! The C++ half (`shim/cuda_graph.cpp`) needs libtorch_cuda, which the
//! CPU-only install lacks and which no tch binary links (see `cuda.rs`). So
//! the build compiles it into a shared object of its own, with its CUDA
//! symbols unresolved, and embeds the bytes here; the first graph writes
//! them to a temporary file, opens it once libtorch_cuda.so is loaded
//! (RTLD_GLOBAL), which resolves those symbols, and removes the file.
//! CPU-only builds and runs never touch it.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use tch::Device;

use crate::cuda;

const SHIM: &[u8] = include_bytes!(env!("FWT_CUDA_GRAPH_SHIM"));
const SHIM_NOTE: &str = env!("FWT_CUDA_GRAPH_SHIM_NOTE");

type Status = *mut c_char;

/// The shim's entry points, resolved once.
struct Api {
    free_message: unsafe extern "C" fn(Status),
    new: unsafe extern "C" fn(*mut *mut c_void) -> Status,
    delete: unsafe extern "C" fn(*mut c_void),
    begin: unsafe extern "C" fn(*mut c_void) -> Status,
    end: unsafe extern "C" fn(*mut c_void) -> Status,
    replay: unsafe extern "C" fn(*mut c_void) -> Status,
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

fn api() -> Result<&'static Api> {
    API.get_or_init(open)
        .as_ref()
        .map_err(|reason| anyhow!("CUDA graphs are unavailable: {reason}"))
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local message or null.
    unsafe {
        let message = libc::dlerror();
        if message.is_null() {
            "unknown dlopen error".to_owned()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    }
}

/// Opens a shared library from its bytes: writes them to a temporary file
/// (under `TMPDIR`), opens that with `dlopen` and removes the file, which
/// the loaded library outlives. The handle is never closed. Portable
/// (Linux, macOS), unlike Linux's anonymous in-memory files.
pub(crate) fn open_library_bytes(bytes: &[u8], name: &str) -> Result<*mut c_void, String> {
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .suffix(std::env::consts::DLL_SUFFIX)
        .tempfile()
        .map_err(|e| format!("creating a temporary file for {name}: {e}"))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| format!("writing {name} to {}: {e}", file.path().display()))?;
    let path = CString::new(file.path().as_os_str().as_bytes())
        .map_err(|_| format!("{} holds a NUL byte", file.path().display()))?;
    // SAFETY: dlopen with a NUL-terminated path to a complete file.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "opening {name} from {}: {} (a TMPDIR mounted noexec cannot hold libraries: \
             point TMPDIR at another folder)",
            file.path().display(),
            dl_error()
        ));
    }
    Ok(handle)
}

/// The CUDA shim's handle (never closed).
struct Library(*mut c_void);

// SAFETY: a dlopen handle may be used from any thread.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();

/// A function of the CUDA shim (`shim/cuda_graph.cpp` and, where built,
/// `shim/distributed_nccl.cpp`), the library opened once, after
/// libtorch_cuda.so.
pub(crate) fn cuda_shim_symbol(name: &CStr) -> Result<*mut c_void, String> {
    let library = LIBRARY
        .get_or_init(|| {
            if SHIM.is_empty() {
                return Err(SHIM_NOTE.to_owned());
            }
            cuda::load()?;
            open_library_bytes(SHIM, "fw-torch-cuda-graph").map(Library)
        })
        .as_ref()
        .map_err(Clone::clone)?;
    // SAFETY: dlsym on a live handle.
    let address = unsafe { libc::dlsym(library.0, name.as_ptr()) };
    if address.is_null() {
        Err(format!("the CUDA shim lacks {name:?}"))
    } else {
        Ok(address)
    }
}

fn open() -> Result<Api, String> {
    let symbol = cuda_shim_symbol;
    // SAFETY: each symbol is the shim's function of that signature.
    unsafe {
        Ok(Api {
            free_message: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(Status)>(symbol(
                c"fwt_graph_free_message",
            )?),
            new: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut *mut c_void) -> Status>(
                symbol(c"fwt_graph_new")?,
            ),
            delete: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(symbol(
                c"fwt_graph_delete",
            )?),
            begin: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> Status>(
                symbol(c"fwt_graph_begin")?,
            ),
            end: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> Status>(
                symbol(c"fwt_graph_end")?,
            ),
            replay: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> Status>(
                symbol(c"fwt_graph_replay")?,
            ),
        })
    }
}

fn check(api: &Api, status: Status, what: &str) -> Result<()> {
    if status.is_null() {
        return Ok(());
    }
    // SAFETY: a NUL-terminated malloc'ed message from the shim, freed once.
    let text = unsafe { CStr::from_ptr(status) }
        .to_string_lossy()
        .into_owned();
    unsafe { (api.free_message)(status) };
    bail!("{what}: {text}")
}

/// Whether CUDA graphs can be captured on `device`; Err says why not.
pub fn cuda_graphs_available(device: Device) -> Result<()> {
    if !device.is_cuda() {
        bail!("CUDA graphs need a CUDA device; this run is on {device:?}");
    }
    api().map(drop)
}

/// One captured CUDA graph: recorded once, replayed as one launch. The
/// tensors the work read and wrote are the graph's static inputs and
/// outputs: fill the inputs in place before [`CudaGraph::replay`], read
/// the outputs after it.
pub struct CudaGraph {
    api: &'static Api,
    handle: *mut c_void,
}

impl CudaGraph {
    /// Records `work` (its kernels are queued into the graph, not run) on a
    /// side stream with the graph's own memory pool, as `torch.cuda.graph`
    /// does. `work` must not read values back to the host. Run it eagerly at
    /// least once before, so that lazy initialisation (cuBLAS handles,
    /// kernel choice) is not captured.
    pub fn capture<T>(device: Device, work: impl FnOnce() -> Result<T>) -> Result<(Self, T)> {
        cuda_graphs_available(device)?;
        let api = api()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: the shim writes a fresh Graph* into `handle`.
        check(
            api,
            unsafe { (api.new)(&mut handle) },
            "creating a CUDA graph",
        )?;
        let graph = Self { api, handle };
        // SAFETY: `handle` is a live Graph*.
        check(
            api,
            unsafe { (api.begin)(handle) },
            "starting a CUDA graph capture",
        )?;
        let output = work();
        // SAFETY: as above; ends the capture even when `work` failed.
        let ended = check(
            api,
            unsafe { (api.end)(handle) },
            "ending a CUDA graph capture",
        );
        let output = output?;
        ended?;
        Ok((graph, output))
    }

    /// Launches the recorded work on the current stream (asynchronously).
    pub fn replay(&self) -> Result<()> {
        // SAFETY: `handle` is a live, captured Graph*.
        check(
            self.api,
            unsafe { (self.api.replay)(self.handle) },
            "replaying a CUDA graph",
        )
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: created by fwt_graph_new, deleted once.
        unsafe { (self.api.delete)(self.handle) }
    }
}

/// A step that runs eagerly for its first `warmup` calls, is then captured
/// once as a CUDA graph, and is replayed on every later call. The outputs
/// are those of the latest eager call, or the graph's static outputs.
pub struct GraphedStep<T> {
    device: Device,
    warmup: usize,
    calls: usize,
    graph: Option<CudaGraph>,
    output: Option<T>,
}

impl<T> GraphedStep<T> {
    pub fn new(device: Device, warmup: usize) -> Self {
        Self {
            device,
            warmup,
            calls: 0,
            graph: None,
            output: None,
        }
    }

    /// Runs one step: `work` itself while warming up, its capture (then one
    /// replay) on the first call after, a replay on every call after that.
    /// Every call does the step's work once. `work` must take its inputs
    /// from tensors that the caller refills in place before each call.
    pub fn run(&mut self, mut work: impl FnMut() -> Result<T>) -> Result<&T> {
        self.calls += 1;
        match &self.graph {
            Some(graph) => graph.replay()?,
            None if self.calls <= self.warmup => self.output = Some(work()?),
            None => {
                let (graph, output) = CudaGraph::capture(self.device, work)?;
                graph.replay()?;
                self.graph = Some(graph);
                self.output = Some(output);
            }
        }
        Ok(self.output.as_ref().expect("set above"))
    }

    /// Whether later calls replay a graph.
    pub fn is_captured(&self) -> bool {
        self.graph.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe library (`shim/probe.c`), opened the way the CUDA graph
    /// shim is: from bytes, through a temporary file that is then removed.
    #[test]
    fn a_library_opens_from_its_bytes_and_leaves_no_file() {
        const PROBE: &[u8] = include_bytes!(env!("FWT_PROBE_LIBRARY"));
        let temp = std::env::temp_dir();
        let leftovers = || {
            std::fs::read_dir(&temp)
                .unwrap()
                .filter_map(|entry| entry.ok())
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("fw-torch-probe-")
                })
                .count()
        };
        let handle = open_library_bytes(PROBE, "fw-torch-probe").unwrap();
        // SAFETY: the probe's one function, `int fwt_probe(void)`.
        let value = unsafe {
            let address = libc::dlsym(handle, c"fwt_probe".as_ptr());
            assert!(!address.is_null(), "{}", dl_error());
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(address)()
        };
        assert_eq!(value, 42);
        assert_eq!(leftovers(), 0, "the temporary file outlived the opening");
        let error = open_library_bytes(b"not a library", "fw-torch-probe").unwrap_err();
        assert!(error.contains("opening fw-torch-probe from"), "{error}");
        assert_eq!(leftovers(), 0);
    }
}
