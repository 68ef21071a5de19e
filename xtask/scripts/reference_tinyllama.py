#!/usr/bin/env python3
"""TinyLlama generation through each framework's own Python implementation,
measured as bench-tinyllama measures its twins, for comparison beside them.

  hf:     Hugging Face transformers' LlamaForCausalLM and model.generate (PyTorch)
  mlx-lm: mlx_lm's llama Model and generate_step (MLX), as mlx_lm.benchmark uses

Weights are seeded random weights of TinyLlama-1.1B's exact config (no
network here); speed does not depend on their values. Per repetition: a
prompt of P random token ids; time to first token; then G more tokens with
end-of-sequence ignored. Rows are appended to a CSV in the suite's format.

usage: reference_tinyllama.py {hf,mlx-lm} CSV [--precision f32|bf16|f16]
       [--prompt-tokens 128] [--gen-tokens 32] [--warmup 1] [--repetitions 5]
"""
import argparse, csv, datetime, os, platform, statistics, subprocess, time

CONFIG = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
              num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
              rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048)
COLUMNS = ("run_id timestamp benchmark case framework device precision preset status reason "
           "repetitions median_s min_s max_s mean_s std_s iqr_s throughput throughput_unit "
           "peak_memory_bytes peak_rss_bytes settings device_name framework_version os cpu "
           "cpu_cores ram_gib gpu gpu_driver mlx_version libtorch_version suite_version git_commit").split()


def quantile(xs, q):
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] * (1 - (pos - lo)) + xs[hi] * (pos - lo)


def run_hf(args, prompt):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.precision]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG, tie_word_embeddings=False)).to("cuda", dtype).eval()
    ids = torch.tensor([prompt], device="cuda")
    times = []
    with torch.no_grad():
        for _ in range(args.warmup + args.repetitions):
            torch.cuda.synchronize(); t0 = time.perf_counter()
            model(ids, use_cache=True, logits_to_keep=1)  # last position's logits, as the twins
            torch.cuda.synchronize(); prefill = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
            torch.cuda.synchronize(); ttft = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=args.gen_tokens + 1, min_new_tokens=args.gen_tokens + 1,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
            torch.cuda.synchronize(); total = time.perf_counter() - t0
            assert out.shape[1] == len(prompt) + args.gen_tokens + 1, out.shape
            times.append((prefill, ttft, total - ttft))
    return times[args.warmup:], torch.cuda.max_memory_allocated(), "hf-transformers", \
        __import__("transformers").__version__, torch.cuda.get_device_name(0)


def run_mlx_lm(args, prompt):
    import mlx.core as mx
    from mlx_lm.models import llama
    from mlx_lm.generate import generate_step
    dtype = {"f32": mx.float32, "bf16": mx.bfloat16, "f16": mx.float16}[args.precision]
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs(model_type="llama", tie_word_embeddings=False, **CONFIG))
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    ids = mx.array(prompt)
    times = []
    for _ in range(args.warmup + args.repetitions):
        mx.synchronize(); t0 = time.perf_counter()
        hidden = model.model(ids[None])
        mx.eval(model.lm_head(hidden[:, -1:]))  # last position's logits, as the twins
        mx.synchronize(); prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        count = 0
        for count, (token, _) in enumerate(generate_step(ids, model, max_tokens=args.gen_tokens + 1)):
            if count == 0:
                ttft = time.perf_counter() - t0
        mx.synchronize(); total = time.perf_counter() - t0
        assert count == args.gen_tokens, count
        times.append((prefill, ttft, total - ttft))
    import mlx_lm
    return times[args.warmup:], mx.get_peak_memory(), "mlx-lm", mlx_lm.__version__, "gpu (cuda)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("backend", choices=["hf", "mlx-lm"])
    p.add_argument("csv")
    p.add_argument("--precision", default="f32", choices=["f32", "bf16", "f16"])
    p.add_argument("--preset", default="quick")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repetitions", type=int, default=5)
    args = p.parse_args()
    if args.precision == "f32":
        # Strict float32, as the twins: MLX's CUDA default is TF32.
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
        os.environ.setdefault("MLX_ENABLE_TF32", "0")
    import random
    rng = random.Random(0)
    prompt = [rng.randrange(3, CONFIG["vocab_size"]) for _ in range(args.prompt_tokens)]
    run = run_hf if args.backend == "hf" else run_mlx_lm
    times, peak, framework, version, device_name = run(args, prompt)
    try:
        gpu, driver = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True).stdout.splitlines()[0].split(", ")
    except Exception:
        gpu, driver = "", ""
    versions = {}
    for module in ("mlx.core", "torch"):
        try:
            versions[module] = __import__(module, fromlist=["x"]).__version__
        except Exception:
            versions[module] = ""
    now = datetime.datetime.now(datetime.timezone.utc)
    settings = (f"weights=random (seed 0);prompt_tokens={args.prompt_tokens};gen_tokens={args.gen_tokens};"
                f"warmup={args.warmup};repetitions={args.repetitions};sampling=greedy;"
                f"reference=python {framework} {version}")
    cases = {"prompt": ([t[0] for t in times], args.prompt_tokens),
             "generate": ([t[2] for t in times], args.gen_tokens),
             "ttft": ([t[1] for t in times], None)}
    new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
    with open(args.csv, "a", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        if new:
            w.writeheader()
        for case, (xs, work) in cases.items():
            median = statistics.median(xs)
            w.writerow(dict(
                run_id=now.strftime("%Y%m%dT%H%M%SZ") + "-" + framework, timestamp=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                benchmark="tinyllama", case=case, framework=framework, device="gpu", precision=args.precision,
                preset=args.preset, status="ok", reason="", repetitions=len(xs), median_s=median,
                min_s=min(xs), max_s=max(xs), mean_s=statistics.mean(xs),
                std_s=statistics.stdev(xs) if len(xs) > 1 else 0.0,
                iqr_s=quantile(xs, 0.75) - quantile(xs, 0.25),
                throughput=(work / median) if work else "", throughput_unit="tokens/s" if work else "",
                peak_memory_bytes=peak, peak_rss_bytes="", settings=settings, device_name=device_name,
                framework_version=version, os=platform.platform(), cpu=platform.processor(),
                cpu_cores=os.cpu_count(), ram_gib=0, gpu=gpu, gpu_driver=driver,
                mlx_version=versions["mlx.core"], libtorch_version=versions["torch"],
                suite_version="reference", git_commit=os.environ.get("BENCH_GIT_COMMIT", "unknown")))
            print(framework, args.precision, case, f"median {median:.4f} s", f"{work / median:.1f} tokens/s" if work else "")


if __name__ == "__main__":
    main()
