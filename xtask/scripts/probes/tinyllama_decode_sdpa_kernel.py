"""Probe: which SDPA kernel runs the PyTorch twin's 16-bit decode attention.

The twin's decode step (crates/bench-tinyllama/src/torch.rs, `attention_step`)
is captured once as a CUDA graph, so its shapes are fixed: the query heads
of each key/value head as that head's queries, q [1, 4, 8, 64], against the
whole preallocated cache, keys and values [1, 4, CAP, 64], with an additive
mask [1, 1, 1, CAP] hiding the slots past the current position. This
prints, for bf16 and f16, which SDPA back-ends accept those inputs, which
kernels the default choice launches, and the time of 22 layers' attention
(one decode step's) replayed as a CUDA graph: the twin's masked call, and
the unmasked flash call over the valid prefix alone that a step without a
fixed-shape graph could make.

Run on the GPU machine from the repository root:
    python3 xtask/scripts/probes/tinyllama_decode_sdpa_kernel.py
Findings are in crates/bench-tinyllama/src/torch.rs (`attention_step`).
"""
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

dev = "cuda"
LAYERS, KV, GROUP, HD, CAP, POS = 22, 4, 8, 64, 640, 512
BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]


def inputs(dtype):
    g = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(1, KV, GROUP, HD, device=dev, dtype=dtype, generator=g)
    keys = [torch.randn(1, KV, CAP, HD, device=dev, dtype=dtype, generator=g) for _ in range(LAYERS)]
    values = [torch.randn(1, KV, CAP, HD, device=dev, dtype=dtype, generator=g) for _ in range(LAYERS)]
    hidden = torch.arange(CAP, device=dev).gt(POS)
    mask = torch.zeros(CAP, device=dev, dtype=dtype).masked_fill(hidden, float("-inf")).view(1, 1, 1, CAP)
    return q, keys, values, mask


def graphed_ms(step, n=200):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    times = []
    for _ in range(5):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            g.replay()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / n * 1e3)
    return sorted(times)[2]


def kernels(step):
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sorted({e.key for e in prof.key_averages() if e.self_device_time_total > 0})


with torch.no_grad():
    print(torch.__version__, torch.cuda.get_device_name())
    scale = HD ** -0.5
    for dtype in (torch.bfloat16, torch.float16):
        q, keys, values, mask = inputs(dtype)
        print(f"{dtype}: q {list(q.shape)}, keys {list(keys[0].shape)}, mask {list(mask.shape)}")
        for backend in BACKENDS:
            try:
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, keys[0], values[0], attn_mask=mask, scale=scale)
                print(f"  {backend.name:20s} accepts the masked call")
            except RuntimeError as error:
                print(f"  {backend.name:20s} refuses it: {str(error).splitlines()[0][:120]}")

        def masked():
            for k, v in zip(keys, values):
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

        def prefix_flash():
            for k, v in zip(keys, values):
                F.scaled_dot_product_attention(q, k[:, :, :POS + 1], v[:, :, :POS + 1], scale=scale)

        print(f"  default, masked (the twin): kernels {kernels(masked)}")
        print(f"    {graphed_ms(masked):.4f} ms for {LAYERS} layers, graphed")
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            print(f"  flash, valid prefix, no mask: kernels {kernels(prefix_flash)}")
            print(f"    {graphed_ms(prefix_flash):.4f} ms for {LAYERS} layers, graphed")
        ref = F.scaled_dot_product_attention(q, keys[0], values[0], attn_mask=mask, scale=scale)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            out = F.scaled_dot_product_attention(q, keys[0][:, :, :POS + 1], values[0][:, :, :POS + 1], scale=scale)
        print(f"  masked vs prefix: max abs difference {(ref - out).abs().max().item():.3e}")
