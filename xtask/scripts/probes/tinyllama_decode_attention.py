"""Probe: why the PyTorch twin's float32 TinyLlama decode trailed gpt-fast.

The Rust twin's decode step (crates/bench-tinyllama/src/torch.rs, `decode_step`)
transcribed op for op with the same ATen calls, random weights of the
TinyLlama-1.1B config, a 640-position cache at position 512. Prints, per dtype
and attention variant, the CUDA-graph-replayed step time (median of 5 x 64
replays) and the final hidden state's distance from the SDPA variant;
`--profile` adds the eager step's top kernels, `--gpt-fast` the
torch.compile(mode="reduce-overhead") step of references/tinyllama.py at f32.

Run on the GPU machine from the repository root:
    python3 xtask/scripts/probes/tinyllama_decode_attention.py --profile --gpt-fast
Findings (H200, 2026-11-30) are in reports/FINDINGS.md, under TinyLlama generation.
"""
import os
import sys
import time

os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.profiler import profile, ProfilerActivity  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
L, D, FF, H, KV, HD, V, CAP, EPS = 22, 2048, 5632, 32, 4, 64, 32000, 640, 1e-5
VARIANTS = {torch.float32: ("sdpa", "composed"),
            torch.bfloat16: ("sdpa", "composed", "composed-f32-softmax")}


def twin(dtype, attn):
    g = torch.Generator(device=dev).manual_seed(0)
    r = lambda *s: (torch.randn(*s, device=dev, generator=g) * 0.02).to(dtype)
    layers = [dict(n1=torch.ones(D, device=dev, dtype=dtype), qkv=r((H + 2 * KV) * HD, D), o=r(D, H * HD),
                   n2=torch.ones(D, device=dev, dtype=dtype), gu=r(2 * FF, D), down=r(D, FF)) for _ in range(L)]
    emb, head, norm = r(V, D), r(V, D), torch.ones(D, device=dev, dtype=dtype)
    keys = [torch.zeros(1, KV, CAP, HD, device=dev, dtype=dtype) for _ in range(L)]
    vals = [torch.zeros(1, KV, CAP, HD, device=dev, dtype=dtype) for _ in range(L)]
    inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2, device=dev).float() / HD))
    ang = torch.outer(torch.arange(CAP, device=dev).float(), inv); ang = torch.cat((ang, ang), -1)
    s = ang.sin(); sin = torch.cat((-s[:, :HD // 2], s[:, HD // 2:]), 1).to(dtype); cos = ang.cos().to(dtype)
    token = torch.zeros(1, 1, dtype=torch.long, device=dev); pos = torch.full((1,), 512, dtype=torch.long, device=dev)
    last = [None]
    chosen = torch.zeros(CAP, dtype=torch.long, device=dev); kpos = torch.arange(CAP, device=dev)

    def step():
        hidden = kpos.gt(pos)
        mask = torch.zeros(CAP, dtype=dtype, device=dev).masked_fill(hidden, float("-inf")).view(1, 1, 1, CAP)
        c, sn = cos.index_select(0, pos), sin.index_select(0, pos)
        x = F.embedding(token, emb)
        for i, l in enumerate(layers):
            h = F.rms_norm(x, [D], l["n1"], EPS)
            qkv = F.linear(h, l["qkv"])
            qk = qkv.narrow(2, 0, (H + KV) * HD).view(1, 1, H + KV, HD)
            a, b = qk.chunk(2, -1)
            sw = torch.cat((b, a), -1)
            rot = (qk * c.unsqueeze(1)).addcmul(sw, sn.unsqueeze(1))
            q = rot.narrow(2, 0, H).transpose(1, 2); k = rot.narrow(2, H, KV).transpose(1, 2)
            v = qkv.narrow(2, (H + KV) * HD, KV * HD).view(1, 1, KV, HD).transpose(1, 2)
            keys[i].index_copy_(2, pos, k); vals[i].index_copy_(2, pos, v)
            q = q.reshape(1, KV, H // KV, HD)
            if attn == "sdpa":  # as the twin runs 16-bit steps
                o = F.scaled_dot_product_attention(q, keys[i], vals[i], attn_mask=mask, scale=HD ** -0.5)
            else:  # "composed": as the twin runs float32 steps (float32_step_attention)
                sc = torch.baddbmm(mask.view(1, 1, CAP), q.view(KV, H // KV, HD), keys[i].view(KV, CAP, HD).transpose(1, 2), alpha=HD ** -0.5)
                p_ = sc.softmax(-1, dtype=torch.float32).to(dtype) if attn == "composed-f32-softmax" else sc.softmax(-1)
                o = torch.bmm(p_, vals[i].view(KV, CAP, HD))
            x = x + F.linear(o.reshape(1, 1, H * HD), l["o"])
            h = F.rms_norm(x, [D], l["n2"], EPS)
            gu = F.linear(h, l["gu"]); gate, up = gu.chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, l["down"])
        x = F.rms_norm(x, [D], norm, EPS)
        nxt = F.linear(x, head).view(1, V).float().argmax(-1, keepdim=True)
        chosen.index_copy_(0, pos, nxt.view(1)); token.copy_(nxt); pos.add_(1)
        last[0] = x
    def reset(): pos.fill_(512)
    return step, reset, last

def time_graphed(step, reset, n=64):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3): step(); reset()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): step()
    best = []
    for _ in range(5):
        reset(); torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(n): g.replay()
        torch.cuda.synchronize(); best.append((time.perf_counter() - t) / n)
    best.sort(); return best[2]

def kernel_table(step, reset):
    for _ in range(3):
        step()
    reset()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(4):
            step()
        torch.cuda.synchronize()
    reset()
    kernels = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in kernels) / 4
    print(f"  eager step: {total / 1e3:.3f} ms of kernels, {sum(e.count for e in kernels) // 4} launches")
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:8]:
        print(f"  {e.self_device_time_total / 4 / 1e3:7.3f} ms  x{e.count // 4:4d}  {e.key[:100]}")


def gpt_fast_step_time():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "references"))
    import tinyllama as ref
    model = ref.gpt_fast_model(torch, CAP, torch.float32, dev)

    def step(x, p):
        return torch.argmax(model(x, p)[:, -1], dim=-1, keepdim=True)
    compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
    tok, p = torch.tensor([[5]], device=dev), torch.tensor([512], device=dev)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        for _ in range(5):
            compiled(tok, p)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(64):
            compiled(tok, p)
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / 64


with torch.no_grad():
    print(torch.__version__, torch.cuda.get_device_name())
    for dtype, variants in VARIANTS.items():
        finals = {}
        for attn in variants:
            step, reset, last = twin(dtype, attn)
            for _ in range(4):
                step()
            finals[attn] = last[0].float().clone()
            reset()
            t = time_graphed(step, reset)
            print(f"{dtype} {attn:20s} graphed step {t * 1e3:.3f} ms = {1 / t:.1f} tokens/s", flush=True)
            if "--profile" in sys.argv:
                kernel_table(step, reset)
            del step, reset
            torch.cuda.empty_cache()
        for attn, final in finals.items():
            gap = (final - finals["sdpa"]).abs().max().item()
            print(f"  {attn} vs sdpa: final hidden state max abs difference {gap:.3e}")
    if "--gpt-fast" in sys.argv:
        t = gpt_fast_step_time()
        print(f"gpt-fast torch.compile reduce-overhead float32 step {t * 1e3:.3f} ms = {1 / t:.1f} tokens/s")
