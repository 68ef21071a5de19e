"""What every Python reference shares: the twins' configuration, read from
the twins' own rows (so that a reference runs exactly the twin's sizes,
precision and seed, and cannot drift from it), the timing loop, and rows in
the suite's format (bench_core::row::Row as a JSONL line, its CSV export beside).

A reference is run after the twins of the same benchmark, in the same
device call; `twin_settings` takes the newest ok row of that benchmark,
precision and preset from the results folder.
"""
import argparse
import csv
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time

COLUMNS = ("run_id timestamp benchmark case framework device precision preset status reason "
           "repetitions median_s min_s max_s mean_s std_s iqr_s throughput throughput_unit "
           "peak_memory_bytes peak_rss_bytes settings device_name framework_version os cpu "
           "cpu_cores ram_gib gpu gpu_driver mlx_version libtorch_version suite_version git_commit "
           "execution openblas_core pid knobs").split()

# The settings a reference reads from its twin's row, per benchmark; a
# test (xtask/crates/analysis/src/report.rs, reference_contract) checks that the twins' rows hold them.
REQUIRED = {
    "tinyllama": ["prompt_tokens", "gen_tokens", "seed"],
    "lm-train": ["layers", "dim", "heads", "ffn", "context", "batch_size", "vocab",
                 "learning_rate", "weight_decay", "warmup_steps", "seed"],
    "bert": ["seq_len", "batch_size", "lr", "seed"],
    "whisper": ["model", "origin", "audio", "transcript"],
}


def parse_settings(text):
    """'k=v;k=v' as a dict (a value may hold '=')."""
    out = {}
    for part in text.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
    return out


# The knobs of the twin row that twin_settings read (each reference is one
# process, of one configuration): new_row records them.
TWIN_KNOBS = {}


def twin_settings(results, benchmark, case, precision, preset):
    """The settings of the newest ok twin row of `benchmark`/`case` at this
    precision and preset under the folder (or file) `results`."""
    files = [results] if os.path.isfile(results) else sorted(glob.glob(os.path.join(results, "*.csv")))
    best = None
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if (row.get("benchmark") == benchmark and row.get("case") == case
                        and row.get("framework") in ("torch", "mlx") and row.get("status") == "ok"
                        and row.get("precision") == precision and row.get("preset") == preset):
                    if best is None or row["timestamp"] >= best["timestamp"]:
                        best = row
    if best is None:
        raise SystemExit(f"no ok {benchmark} {case} twin row at {precision}/{preset} in {results}: "
                         "run the twins first (run.sh), then the references")
    settings = parse_settings(best["settings"])
    # The twin's knobs (bench_core::Row::knobs) are the reference's too: it
    # runs the twin's sizes, and the report pairs them by knobs.
    TWIN_KNOBS.clear()
    TWIN_KNOBS.update(parse_settings(best.get("knobs") or ""))
    missing = [k for k in REQUIRED.get(benchmark, []) if k not in settings]
    if missing:
        raise SystemExit(f"the {benchmark} twin row lacks the settings {missing}")
    return settings


def configure_precision(precision):
    """Strict float32 for f32 (MLX's CUDA default is TF32), TF32 for tf32,
    as the twins; must run before torch or mlx start."""
    if precision == "f32":
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
        os.environ["MLX_ENABLE_TF32"] = "0"
    elif precision == "tf32":
        os.environ["TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"] = "1"
        os.environ["MLX_ENABLE_TF32"] = "1"


def quantile(xs, q):
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] * (1 - (pos - lo)) + xs[hi] * (pos - lo)


def time_steps(step, sync, warmup, repetitions, timed_from=None):
    """Seconds of each of `repetitions` calls of `step` after `warmup`
    untimed ones, the device synchronised before each clock read;
    `timed_from` is called where timing begins (CudaGraphCount.mark)."""
    for _ in range(warmup):
        step()
    sync()
    if timed_from is not None:
        timed_from()
    samples = []
    for _ in range(repetitions):
        sync()
        start = time.perf_counter()
        step()
        sync()
        samples.append(time.perf_counter() - start)
    return samples


class TorchDevice:
    """The torch device that runs `--device`: for gpu, CUDA where torch sees
    it, else Apple's Metal (MPS); with the synchronisation that matches and
    the name the rows record (device_name: "cuda:0 <GPU>", "mps <chip>",
    "cpu")."""

    def __init__(self, device):
        import torch
        self.type = "cpu" if device == "cpu" else gpu_kind(torch)
        if self.type is None:
            raise RuntimeError("--device gpu: torch sees neither CUDA nor MPS (Metal)")
        if self.type == "cuda":
            self.sync = torch.cuda.synchronize
            self.name = f"cuda:0 {torch.cuda.get_device_name(0)}"
            self.peak_memory = torch.cuda.max_memory_allocated
        else:
            self.sync = torch.mps.synchronize if self.type == "mps" else (lambda: None)
            self.name = f"mps {apple_chip()}".strip() if self.type == "mps" else "cpu"
            # MPS keeps no peak (torch.mps has the current allocation only).
            self.peak_memory = lambda: ""


def torch_device(device):
    """The TorchDevice of `--device` (gpu or cpu)."""
    return TorchDevice(device)


def gpu_kind(torch=None):
    """The GPU torch sees: "cuda", "mps" (Metal, on a Mac) or None."""
    if torch is None:
        try:
            import torch
        except ImportError:
            return None
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else None


def mlx_device(mx, device):
    """Points MLX at `--device` (gpu: MLX's default GPU, Metal on a Mac,
    CUDA with mlx-cuda) and returns the name the rows record."""
    if device == "cpu":
        mx.set_default_device(mx.cpu)
        return "cpu"
    metal = getattr(mx, "metal", None)
    backend = "metal" if metal is not None and metal.is_available() else "cuda"
    try:
        info = mx.device_info() if hasattr(mx, "device_info") else metal.device_info()
        model = str(info.get("device_name", ""))
    except Exception:
        model = ""
    return f"{backend} {model}".strip()


def apple_chip():
    """The Mac's chip ("Apple M2 Max"), or "" elsewhere."""
    if sys.platform != "darwin":
        return ""
    try:
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def apple_gpu_cores(profile=None):
    """The Mac GPU's cores from `system_profiler SPDisplaysDataType`
    ("Total Number of Cores: 40"), or None; `profile` is that text (tests)."""
    if profile is None:
        try:
            profile = subprocess.run(["system_profiler", "SPDisplaysDataType"], capture_output=True,
                                     text=True, timeout=60).stdout
        except Exception:
            return None
    for line in profile.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Total Number of Cores" and value.strip().isdigit():
            return int(value.strip())
    return None


def mac_identity():
    """What a reference row says of the Mac, as bench_core::mac::MacIdentity
    does (the chip and its GPU cores), so that the report sets it beside the
    twins of the same Mac; None elsewhere."""
    if sys.platform != "darwin":
        return None
    return dict(chip=apple_chip(), gpu_cores=apple_gpu_cores())


def versions():
    out = {}
    for module in ("torch", "transformers", "mlx.core", "mlx_lm", "mlx_whisper"):
        try:
            out[module] = __import__(module, fromlist=["x"]).__version__
        except Exception:
            pass
    return out


def gpu_identity():
    if sys.platform == "darwin":
        return (apple_chip(), "")
    try:
        line = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.splitlines()[0]
        return tuple(line.split(", "))
    except Exception:
        return ("", "")


def write_rows(csv_path, *, benchmark, framework, device, precision, preset, reference, packages,
               cases, settings, device_name, peak_memory=""):
    """Appends one row per case: cases is a list of (case, samples,
    work per repetition or None, unit). `framework` is torch-python or
    mlx-python; the `reference` setting names the path and its packages."""
    v = versions()
    settings = dict(settings)
    settings["reference_path"] = reference
    if VERDICTS:
        settings["mode_check"] = "; ".join(VERDICTS)
    settings["reference"] = f"{reference} " + " ".join(f"{k}={v[k]}" for k in packages if k in v)
    for case, xs, work, unit in cases:
        median = statistics.median(xs)
        row = new_row(benchmark=benchmark, case=case, framework=framework, device=device,
                      precision=precision, preset=preset, settings=settings)
        row.update(
            samples_s=[float(x) for x in xs],
            summary=dict(n=len(xs), median=median, min=min(xs), max=max(xs),
                         mean=statistics.mean(xs),
                         std_dev=statistics.stdev(xs) if len(xs) > 1 else 0.0,
                         iqr=quantile(xs, 0.75) - quantile(xs, 0.25)),
            throughput=(work / median) if work else None, throughput_unit=unit if work else "",
            peak_memory_bytes=peak_memory if peak_memory != "" else None, device_name=device_name,
            framework_version=v.get("mlx.core" if framework == "mlx-python" else "torch", ""))
        append_row(csv_path, row)
        line = f"{benchmark} {case} {framework} [{reference}] {precision}: median {median:.5f} s"
        if work:
            line += f", {work / median:.2f} {unit}"
        print(line, flush=True)


ROW_SCHEMA_VERSION = 2  # bench_core::row::ROW_SCHEMA_VERSION


def new_row(*, benchmark, case, framework, device, precision, preset, settings, status="ok",
            reason=""):
    """A row as bench_core::row::Row serialises it (schema 2), without figures."""
    now = datetime.datetime.now(datetime.timezone.utc)
    gpu, driver = gpu_identity() if device == "gpu" else ("", "")
    v = versions()
    return dict(
        schema_version=ROW_SCHEMA_VERSION,
        run_id=os.environ.get("BENCH_RUN_ID", now.strftime("%Y%m%dT%H%M%SZ")),
        timestamp=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        benchmark=benchmark, case=case, framework=framework.removesuffix("-python"),
        implementation="python", device=device, precision=precision, preset=preset,
        execution="best", status=status, reason=reason, knobs=dict(TWIN_KNOBS),
        samples_s=[], summary=None,
        throughput=None, throughput_unit="", peak_memory_bytes=None, peak_rss_bytes=None,
        settings={k: str(val).replace(";", ",").replace("\n", " ") for k, val in settings.items()},
        device_name="", framework_version="",
        environment=dict(os=platform.platform(), cpu=platform.processor(), cpu_cores=os.cpu_count(),
                         ram_gib=0, gpu=gpu, gpu_driver=driver, mlx_version=v.get("mlx.core", ""),
                         libtorch_version=v.get("torch", ""), suite_version="reference",
                         git_commit=os.environ.get("BENCH_GIT_COMMIT", "unknown"),
                         openblas_core=os.environ.get("OPENBLAS_CORETYPE", ""), pid=os.getpid(),
                         mac=mac_identity()))


def append_row(csv_path, row):
    """The row as a line of the run's JSONL record, and its CSV export
    (bench_core::csv_export::CsvRow) beside it."""
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with open(os.path.splitext(csv_path)[0] + ".jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    summary = row["summary"] or {}
    env = row["environment"]
    blank = lambda value: "" if value is None else value
    line = dict(
        {k: row[k] for k in ("run_id", "timestamp", "benchmark", "case", "device", "precision",
                             "preset", "status", "reason", "throughput_unit", "device_name",
                             "framework_version", "execution")},
        framework=row["framework"] + "-python", repetitions=blank(summary.get("n")),
        median_s=blank(summary.get("median")), min_s=blank(summary.get("min")),
        max_s=blank(summary.get("max")), mean_s=blank(summary.get("mean")),
        std_s=blank(summary.get("std_dev")), iqr_s=blank(summary.get("iqr")),
        throughput=blank(row["throughput"]), peak_memory_bytes=blank(row["peak_memory_bytes"]),
        peak_rss_bytes="", settings=";".join(f"{k}={v}" for k, v in row["settings"].items()),
        knobs=";".join(f"{k}={v}" for k, v in sorted(row["knobs"].items())),
        **{k: env[k] for k in COLUMNS if k in env})
    new = not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(line)


def failed_row(csv_path, *, benchmark, framework, device, precision, preset, reference, reason,
               status="failed", device_name=""):
    """A reference that could not run is recorded as failed (or skipped),
    with why."""
    row = new_row(benchmark=benchmark, case="-", framework=framework, device=device,
                  precision=precision, preset=preset, settings={"reference": reference},
                  status=status, reason=reason.replace("\n", " ")[:500])
    row["device_name"] = device_name
    append_row(csv_path, row)
    print(f"{benchmark} {framework} [{reference}] {precision}: {status.upper()} {reason[:300]}",
          flush=True)


def backends_for(device, backends, cuda_graphs=()):
    """The backends that run on `device`: all but `cuda_graphs` (CUDA
    graphs, from torch.compile mode="reduce-overhead" or torch.cuda.graph)
    where there is no CUDA: on the CPU and on a Mac's GPU (MPS). Their mode
    checks would refuse them there; torch.compile's default mode, which
    needs no CUDA, has its own backends."""
    skip = set(cuda_graphs) if device == "cpu" or gpu_kind() != "cuda" else set()
    return [b for b in sorted(backends) if b not in skip]


def parse_args(benchmark, backends, warmup, repetitions, precisions=("f32", "tf32", "bf16"),
               cuda_graphs=()):
    """The command line every reference takes:
    BACKEND RESULTS_DIR [--precision] [--preset] [--device] [--warmup] [--repetitions] [--csv].
    Returns the arguments, the backend's (framework, reference name,
    packages, run function) and the CSV path. `--backends-for DEVICE`
    lists the backends that run on DEVICE (see backends_for). A CUDA-graph
    backend run where there is no CUDA (the CPU, a Mac's MPS) records a
    skipped row saying why.
    `args.device_name` is the device as the rows name it: the run functions
    set it (TorchDevice.name, mlx_device) when they pick the device."""
    if len(sys.argv) == 3 and sys.argv[1] == "--backends-for":
        print("\n".join(backends_for(sys.argv[2], backends, cuda_graphs)))
        raise SystemExit(0)
    p = argparse.ArgumentParser(description=f"{benchmark}: the frameworks' own Python paths")
    p.add_argument("backend", choices=sorted(backends))
    p.add_argument("results", help="folder of the twins' CSV (the reference's rows go there too)")
    p.add_argument("--precision", default="f32", choices=list(precisions))
    p.add_argument("--preset", default="quick")
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--repetitions", type=int, default=repetitions)
    p.add_argument("--csv", help=f"output CSV (default: RESULTS/reference-{benchmark}.csv)")
    args = p.parse_args()
    threads = os.environ.get("BENCH_THREADS")
    if args.device == "cpu" and threads:
        # The twins' thread count (torch's intra-op pool; OpenBLAS for MLX).
        os.environ.setdefault("OMP_NUM_THREADS", threads)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", threads)
    csv_path = args.csv or os.path.join(args.results, f"reference-{benchmark}.csv")
    args.device_name = args.device
    if args.backend in set(cuda_graphs):
        kind = "cpu" if args.device == "cpu" else gpu_kind()
        if kind != "cuda":
            framework, reference = backends[args.backend][:2]
            failed_row(csv_path, benchmark=benchmark, framework=framework, device=args.device,
                       precision=args.precision, preset=args.preset, reference=reference,
                       status="skipped", device_name=kind or "",
                       reason=f"{args.backend} needs CUDA graphs, which need CUDA; "
                              f"this run is on {kind or 'a GPU torch does not see'}")
            raise SystemExit(0)
    return args, backends[args.backend], csv_path


def attempt(csv_path, row, run):
    """Runs a reference; one that fails is recorded as a failed row (never
    lost) and the script exits non-zero."""
    try:
        return run()
    except Exception as error:
        failed_row(csv_path, reason=f"{type(error).__name__}: {error}", **row)
        raise SystemExit(1)


# Mode checks. A reference is named after its execution mode (torch.compile,
# CUDA graphs, mx.compile); where that mode does not run, PyTorch and MLX
# fall back to a slower path without failing: Dynamo runs a frame eagerly
# past a graph break or its recompile limit, Inductor runs a compiled graph
# without its CUDA graph ("skipping cudagraphs due to ..."), an environment
# variable turns MLX's compile or CUDA graphs off. The helpers below make
# such a fallback fail the reference, with its reason, instead of timing the
# slower path under the mode's name.

class ModeNotRun(RuntimeError):
    """The execution mode a reference names did not run; `attempt` records
    the reference as a failed row with this reason."""


# What the checks of this process found where the mode ran: write_rows
# records it as the `mode_check` setting (each reference is one process).
VERDICTS = []


def passed(verdict):
    VERDICTS.append(verdict)
    return verdict


def strict_compile(torch, cuda_graphs=False):
    """Before torch.compile: Dynamo raises where it would otherwise run a
    frame eagerly past its recompile limit; with `cuda_graphs`, Inductor
    raises where it would skip a CUDA graph (its message says why). Clears
    Dynamo's counters, so that check_compiled sees this run's only."""
    import torch._dynamo
    import torch._inductor.config
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    if cuda_graphs:
        torch._inductor.config.triton.cudagraph_or_error = True
    torch._dynamo.utils.counters.clear()


def dynamo_faults(counters):
    """What Dynamo's counters (torch._dynamo.utils.counters, or a dict of
    the same shape) say fell back to Python: graph breaks (by reason),
    frames it could not convert (they ran eagerly), CUDA graphs Inductor
    skipped, or no graph compiled at all. Empty when the compiled mode ran."""
    faults = []
    breaks = dict(counters.get("graph_break", {}))
    if breaks:
        reasons = "; ".join(f"{reason} (x{n})" for reason, n in sorted(breaks.items())[:3])
        faults.append(f"{sum(breaks.values())} graph break(s): {reasons}")
    frames = counters.get("frames", {})
    eager = frames.get("total", 0) - frames.get("ok", 0)
    if eager > 0:
        unsupported = "; ".join(sorted(counters.get("unimplemented", {}))[:3])
        faults.append(f"{eager} frame(s) Dynamo could not compile ran eagerly"
                      + (f" ({unsupported})" if unsupported else ""))
    skips = counters.get("inductor", {}).get("cudagraph_skips", 0)
    if skips:
        faults.append(f"Inductor skipped {skips} CUDA graph(s)")
    if not counters.get("stats", {}).get("unique_graphs", 0):
        faults.append("Dynamo compiled no graph (the function ran as plain Python)")
    return faults


def check_compiled(torch, what):
    """Raises ModeNotRun unless every call of `what` ran compiled (see
    dynamo_faults)."""
    counters = torch._dynamo.utils.counters
    faults = dynamo_faults(counters)
    if faults:
        raise ModeNotRun(f"{what} did not run as compiled: " + "; ".join(faults))
    return passed(f"{what}: {counters['stats']['unique_graphs']} graph(s) compiled, "
                  "no graph break or eager frame")


class CudaGraphCount:
    """Counts, while open, the CUDA graphs captured and replayed in this
    process: torch.compile's CUDA graph trees and torch.cuda.graph both
    capture and replay through torch.cuda.CUDAGraph, whose two methods are
    wrapped here (a Python call more per replay, nothing on the GPU).
    `mark()` starts the timed part: captures_since and replays_since count
    from there."""

    def __init__(self, torch):
        self.graph_class = torch.cuda.CUDAGraph
        self.captures = self.replays = 0
        self.marked = (0, 0)

    def __enter__(self):
        cls, count = self.graph_class, self
        self.saved = (cls.capture_end, cls.replay)
        capture_end, replay = self.saved

        def counted_capture_end(graph):
            capture_end(graph)
            count.captures += 1

        def counted_replay(graph):
            replay(graph)
            count.replays += 1
        cls.capture_end, cls.replay = counted_capture_end, counted_replay
        return self

    def __exit__(self, *exc):
        self.graph_class.capture_end, self.graph_class.replay = self.saved
        return False

    def mark(self):
        self.marked = (self.captures, self.replays)

    @property
    def captures_since(self):
        return self.captures - self.marked[0]

    @property
    def replays_since(self):
        return self.replays - self.marked[1]


def require_cuda(device_type):
    """Raises ModeNotRun before a CUDA-graph path is built where there is
    no CUDA (parse_args records such a run as skipped)."""
    if device_type != "cuda":
        raise ModeNotRun(f"CUDA graphs need CUDA; this run is on {device_type}")


def cuda_graph_faults(device_type, count, timed_calls):
    """Why `timed_calls` calls of a CUDA-graph step, counted by `count`
    (a CudaGraphCount marked where timing began), did not each replay a
    graph captured before timing; empty when they did."""
    if device_type != "cuda":
        return [f"CUDA graphs need CUDA; this run is on {device_type}"]
    faults = []
    if count.captures == 0:
        faults.append("no CUDA graph was captured")
    if count.captures_since:
        faults.append(f"{count.captures_since} CUDA graph(s) captured during the timed steps "
                      "(re-recorded, or the warm-up was too short to capture)")
    if count.replays_since < timed_calls:
        faults.append(f"{count.replays_since} CUDA graph replays for {timed_calls} timed calls")
    return faults


def check_cuda_graphs(torch, device_type, count, timed_calls, what, compiled=True):
    """Raises ModeNotRun unless each of the `timed_calls` timed calls of
    `what` replayed a CUDA graph captured before timing (and, for
    torch.compile's graphs, `compiled`, nothing fell back: check_compiled)."""
    faults = cuda_graph_faults(device_type, count, timed_calls)
    if compiled:
        faults += dynamo_faults(torch._dynamo.utils.counters)
    if faults:
        raise ModeNotRun(f"{what} did not run as CUDA graphs: " + "; ".join(faults))
    return passed(f"{what}: {count.captures} CUDA graph(s) captured before timing, "
                  f"{count.replays_since} replays in {timed_calls} timed calls"
                  + (", no graph break or eager frame" if compiled else ""))


def mlx_mode_faults(environ, backend, compiled):
    """What in the environment turns off MLX's mode: MLX_DISABLE_COMPILE
    makes mx.compile a plain call (where the reference compiles), and on
    CUDA MLX_USE_CUDA_GRAPHS=0 turns off the graphs MLX records by default."""
    faults = []
    # MLX reads the first by presence (any value), the second as an integer.
    if compiled and "MLX_DISABLE_COMPILE" in environ:
        faults.append("MLX_DISABLE_COMPILE is set: mx.compile would not compile")
    graphs = environ.get("MLX_USE_CUDA_GRAPHS", "1").strip()
    if backend == "cuda" and graphs.lstrip("-").isdigit() and int(graphs) == 0:
        faults.append(f"MLX_USE_CUDA_GRAPHS={graphs}: MLX would not record its CUDA graphs")
    return faults


def check_mlx_mode(device_name, compiled):
    """Raises ModeNotRun where the environment turns off MLX's mode (see
    mlx_mode_faults); `device_name` is mlx_device's ("cuda ...", "metal ...",
    "cpu")."""
    backend = device_name.split(" ")[0]
    faults = mlx_mode_faults(os.environ, backend, compiled)
    if faults:
        raise ModeNotRun("MLX's mode is turned off: " + "; ".join(faults))
    kept = (["mx.compile"] if compiled else []) + (["CUDA graphs"] if backend == "cuda" else [])
    if kept:
        passed(f"MLX: {' and '.join(kept)} not turned off")
