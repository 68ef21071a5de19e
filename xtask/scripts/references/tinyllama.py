#!/usr/bin/env python3
"""TinyLlama generation through each framework's own Python paths, at the
twin's exact configuration (prompt and generation lengths, precision, seed)
read from the twin's row, measured as bench-tinyllama measures its twins:
the prompt in one pass (prompt), time to first token (ttft), then
gen_tokens greedy single-token steps with end-of-sequence ignored
(generate, the headline).

  hf                  transformers LlamaForCausalLM.generate, eager (dynamic cache)
  hf-static-compile   transformers with a static cache and
                      torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
  gpt-fast            gpt-fast's loop (generate.py, model.py): static KV cache as module
                      buffers, fused wqkv and w13 projections, gpt-fast's Inductor settings
                      (coordinate_descent_tuning, triton.unique_kernel_names,
                      fx_graph_cache), decode step under torch.compile(mode="reduce-overhead",
                      fullgraph=True) (CUDA graphs), prompt eager
  gpt-fast-default    the same under torch.compile's default mode (no CUDA graphs: the
                      compiled path where there is no CUDA, e.g. the CPU)
  gpt-fast-eager      the same loop without torch.compile
  mlx-lm              mlx_lm's llama Model and generate_step (as mlx_lm.benchmark); mlx-lm
                      compiles what it ships compiled (swiglu, its samplers) and no whole
                      step (its KV cache grows each token)

Each compiled path checks that it ran so (common.check_compiled,
check_cuda_graphs): a graph break, a Dynamo fallback, a skipped CUDA graph
or a timed step that replayed none fails the row with the reason. Where
there is no CUDA (the CPU, a Mac's MPS) hf-static-compile and gpt-fast are
not listed and, run anyway, record a skipped row.

Weights are seeded random weights of TinyLlama-1.1B's exact config, as the
twins' offline rows (speed does not depend on their values).

usage: tinyllama.py BACKEND RESULTS_DIR --precision P --preset P [--device gpu|cpu]
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CONFIG = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
              num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
              rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048)


def torch_setup(args):
    import torch
    target = common.torch_device(args.device)
    device, args.device_name = target.type, target.name
    dtype = {"f32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
             "f16": torch.float16}[args.precision]
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    return torch, device, dtype, target.sync


def run_hf(args, prompt, static_compile):
    torch, device, dtype, sync = torch_setup(args)
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG, tie_word_embeddings=False)).to(device, dtype).eval()
    if static_compile:
        common.require_cuda(device)
        common.strict_compile(torch, cuda_graphs=True)
        model.generation_config.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    ids = torch.tensor([prompt], device=device)
    kwargs = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    times = []
    with torch.no_grad(), common.CudaGraphCount(torch) as graphs:
        for rep in range(args.warmup + args.repetitions):
            if rep == args.warmup:
                graphs.mark()
            sync(); t0 = time.perf_counter()
            model(ids, use_cache=True, logits_to_keep=1)
            sync(); prefill = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
            sync(); ttft = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=args.gen_tokens + 1,
                                 min_new_tokens=args.gen_tokens + 1, **kwargs)
            sync(); total = time.perf_counter() - t0
            assert out.shape[1] == len(prompt) + args.gen_tokens + 1, out.shape
            times.append((prefill, ttft, total - ttft))
    if static_compile:
        # Each timed repetition's single-token steps (the prompt's passes
        # have their own shapes).
        common.check_cuda_graphs(torch, device, graphs, args.repetitions * args.gen_tokens,
                                 "transformers' compiled forward")
    execution = "torch.compile reduce-overhead, static cache" if static_compile else "eager"
    return times[args.warmup:], execution


def gpt_fast_inductor_settings(torch):
    """What gpt-fast's generate.py sets before it compiles. PyTorch's
    _inductor/decomposition.py rewrites a single-row matmul into a fused
    reduction only under coordinate descent tuning ("matrix vector
    multiplies only achieve peak bandwidth with coordinate descent tuning")."""
    import torch._inductor.config
    torch._inductor.config.coordinate_descent_tuning = True
    torch._inductor.config.triton.unique_kernel_names = True
    torch._inductor.config.fx_graph_cache = True


def fuse_projections(torch, state, layers):
    """gpt-fast's load-time fusion of a state dict of the unfused layout:
    per layer wq|wk|wv stacked into wqkv (as gpt-fast's Attention.load_hook)
    and w1|w3 into w13, one matmul each; the same weights, so the same
    function."""
    state = dict(state)
    for i in range(layers):
        a, b = f"layers.{i}.attention.", f"layers.{i}."
        state[a + "wqkv.weight"] = torch.cat([state.pop(a + n + ".weight") for n in ("wq", "wk", "wv")])
        state[b + "w13.weight"] = torch.cat([state.pop(b + n + ".weight") for n in ("w1", "w3")])
    return state


def gpt_fast_model(torch, capacity, dtype, device, fused=True, config=None):
    """Llama as gpt-fast writes it: the KV cache as registered buffers,
    positions and masks indexed by a position tensor; with `fused`, its
    q|k|v projection one matmul (wqkv) and the FFN's gate and up
    projections one (w13). The weights are seeded in the unfused layout,
    as before the fusion, and concatenated at load, so that fused and
    unfused models hold the same numbers."""
    nn, F = torch.nn, torch.nn.functional
    c = CONFIG if config is None else config
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c["hidden_size"] // heads
    d, f = c["hidden_size"], c["intermediate_size"]

    class RMSNorm(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            y = x.float()
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + c["rms_norm_eps"])
            return y.type_as(x) * self.weight

    class Attention(nn.Module):
        def __init__(self, fused):
            super().__init__()
            self.fused = fused
            if fused:
                self.wqkv = nn.Linear(d, (heads + 2 * kv_heads) * head_dim, bias=False)
            else:
                self.wq = nn.Linear(d, heads * head_dim, bias=False)
                self.wk = nn.Linear(d, kv_heads * head_dim, bias=False)
                self.wv = nn.Linear(d, kv_heads * head_dim, bias=False)
            self.wo = nn.Linear(heads * head_dim, d, bias=False)

        def setup_cache(self):
            shape = (1, kv_heads, capacity, head_dim)
            self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype), persistent=False)
            self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype), persistent=False)

        def forward(self, x, cos, sin, mask, pos):
            b, t, _ = x.shape
            if self.fused:
                kv = kv_heads * head_dim
                q, k, v = self.wqkv(x).split([heads * head_dim, kv, kv], dim=-1)
            else:
                q, k, v = self.wq(x), self.wk(x), self.wv(x)
            q = q.view(b, t, heads, head_dim).transpose(1, 2)
            k = k.view(b, t, kv_heads, head_dim).transpose(1, 2)
            v = v.view(b, t, kv_heads, head_dim).transpose(1, 2)

            def rope(a):
                a1, a2 = a.chunk(2, dim=-1)
                return a * cos + torch.cat((-a2, a1), dim=-1) * sin
            q, k = rope(q), rope(k)
            self.k_cache[:, :, pos] = k
            self.v_cache[:, :, pos] = v
            keys = self.k_cache.repeat_interleave(heads // kv_heads, dim=1)
            values = self.v_cache.repeat_interleave(heads // kv_heads, dim=1)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            return self.wo(y.transpose(1, 2).reshape(b, t, heads * head_dim))

    class Block(nn.Module):
        def __init__(self, fused):
            super().__init__()
            self.fused = fused
            self.attention_norm, self.ffn_norm = RMSNorm(d), RMSNorm(d)
            self.attention = Attention(fused)
            if fused:
                self.w13 = nn.Linear(d, 2 * f, bias=False)
            else:
                self.w1 = nn.Linear(d, f, bias=False)
                self.w3 = nn.Linear(d, f, bias=False)
            self.w2 = nn.Linear(f, d, bias=False)

        def forward(self, x, cos, sin, mask, pos):
            h = x + self.attention(self.attention_norm(x), cos, sin, mask, pos)
            y = self.ffn_norm(h)
            gate, up = self.w13(y).chunk(2, dim=-1) if self.fused else (self.w1(y), self.w3(y))
            return h + self.w2(F.silu(gate) * up)

    class Transformer(nn.Module):
        def __init__(self, fused):
            super().__init__()
            self.tok_embeddings = nn.Embedding(c["vocab_size"], d)
            self.layers = nn.ModuleList(Block(fused) for _ in range(c["num_hidden_layers"]))
            self.norm = RMSNorm(d)
            self.output = nn.Linear(d, c["vocab_size"], bias=False)

        def setup_caches(self):
            """The KV caches, rotary tables and causal mask as buffers (as
            gpt-fast's setup_caches, after the weights are loaded)."""
            for layer in self.layers:
                layer.attention.setup_cache()
            inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim))
            angles = torch.outer(torch.arange(capacity).float(), inv)
            angles = torch.cat((angles, angles), dim=-1)
            self.register_buffer("cos", angles.cos().to(dtype), persistent=False)
            self.register_buffer("sin", angles.sin().to(dtype), persistent=False)
            causal = torch.tril(torch.ones(capacity, capacity, dtype=torch.bool))
            self.register_buffer("causal_mask", causal, persistent=False)

        def forward(self, idx, pos):
            mask = self.causal_mask[None, None, pos]
            cos, sin = self.cos[pos], self.sin[pos]
            x = self.tok_embeddings(idx)
            for layer in self.layers:
                x = layer(x, cos, sin, mask, pos)
            return self.output(self.norm(x[:, -1:]))

    # Seeded in the unfused layout (the same draws as before the fusion).
    model = Transformer(fused=False)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    if fused:
        state = fuse_projections(torch, model.state_dict(), c["num_hidden_layers"])
        del model
        with torch.device("meta"):
            model = Transformer(fused=True)
        model.load_state_dict(state, assign=True)
    model.setup_caches()
    return model.to(device=device, dtype=dtype).eval()


GPT_FAST_EXECUTION = {
    "eager": "eager",
    "default": "torch.compile fullgraph decode step (Inductor, no CUDA graphs), eager prompt",
    "graphs": "torch.compile reduce-overhead fullgraph decode step (CUDA graphs), eager prompt",
}


def run_gpt_fast(args, prompt, mode):
    """The gpt-fast loop: `mode` eager, default (torch.compile without CUDA
    graphs) or graphs (reduce-overhead); compiled, with gpt-fast's Inductor
    settings, and checked to have run so (common.check_compiled,
    check_cuda_graphs)."""
    torch, device, dtype, sync = torch_setup(args)
    if mode == "graphs":
        common.require_cuda(device)
    torch.manual_seed(args.seed)
    capacity = args.prompt_tokens + args.gen_tokens
    model = gpt_fast_model(torch, capacity, dtype, device)

    def decode_one_token(x, pos):
        logits = model(x, pos)
        return torch.argmax(logits[:, -1], dim=-1, keepdim=True)
    decode = decode_one_token
    if mode != "eager":
        gpt_fast_inductor_settings(torch)
        common.strict_compile(torch, cuda_graphs=mode == "graphs")
        decode = torch.compile(decode_one_token, fullgraph=True,
                               **({"mode": "reduce-overhead"} if mode == "graphs" else {}))
    ids = torch.tensor([prompt], device=device)
    times = []
    with torch.no_grad(), common.CudaGraphCount(torch) as graphs:
        for rep in range(args.warmup + args.repetitions):
            if rep == args.warmup:
                graphs.mark()
            sync(); t0 = time.perf_counter()
            logits = model(ids, torch.arange(len(prompt), device=device))
            sync(); prefill = time.perf_counter() - t0
            token = torch.argmax(logits[:, -1], dim=-1, keepdim=True)
            sync(); ttft = time.perf_counter() - t0
            t1 = time.perf_counter()
            pos = torch.tensor([len(prompt)], device=device)
            for _ in range(args.gen_tokens):
                # gpt-fast decodes with the math SDPA kernel, which inductor fuses
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    nxt = decode(token, pos)
                pos += 1
                token = nxt.clone()
            sync(); decode_s = time.perf_counter() - t1
            times.append((prefill, ttft, decode_s))
    if mode == "graphs":
        common.check_cuda_graphs(torch, device, graphs, args.repetitions * args.gen_tokens,
                                 "the decode step")
    elif mode == "default":
        common.check_compiled(torch, "the decode step")
    execution = GPT_FAST_EXECUTION[mode] + ", fused wqkv and w13"
    if mode != "eager":
        execution += ", gpt-fast's Inductor settings"
    return times[args.warmup:], execution


def run_mlx_lm(args, prompt):
    import mlx.core as mx
    from mlx_lm.models import llama
    from mlx_lm.generate import generate_step
    args.device_name = common.mlx_device(mx, args.device)
    common.check_mlx_mode(args.device_name, compiled=True)
    dtype = {"f32": mx.float32, "tf32": mx.float32, "bf16": mx.bfloat16, "f16": mx.float16}[args.precision]
    mx.random.seed(args.seed)
    model = llama.Model(llama.ModelArgs(model_type="llama", tie_word_embeddings=False, **CONFIG))
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    ids = mx.array(prompt)
    times = []
    for _ in range(args.warmup + args.repetitions):
        mx.synchronize(); t0 = time.perf_counter()
        hidden = model.model(ids[None])
        mx.eval(model.lm_head(hidden[:, -1:]))
        mx.synchronize(); prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        count, ttft = 0, 0.0
        for count, _ in enumerate(generate_step(ids, model, max_tokens=args.gen_tokens + 1)):
            if count == 0:
                ttft = time.perf_counter() - t0
        mx.synchronize(); total = time.perf_counter() - t0
        assert count == args.gen_tokens, count
        times.append((prefill, ttft, total - ttft))
    return times[args.warmup:], "generate_step (async_eval pipelining)"


BACKENDS = {
    "hf": ("torch-python", "transformers generate eager", ["torch", "transformers"],
           lambda a, p: run_hf(a, p, False)),
    "hf-static-compile": ("torch-python", "transformers static cache + torch.compile",
                          ["torch", "transformers"], lambda a, p: run_hf(a, p, True)),
    "gpt-fast": ("torch-python", "gpt-fast-style loop, torch.compile reduce-overhead, Inductor settings, "
                 "fused wqkv/w13", ["torch"], lambda a, p: run_gpt_fast(a, p, "graphs")),
    "gpt-fast-default": ("torch-python", "gpt-fast-style loop, torch.compile default mode, Inductor "
                         "settings, fused wqkv/w13", ["torch"],
                         lambda a, p: run_gpt_fast(a, p, "default")),
    "gpt-fast-eager": ("torch-python", "gpt-fast-style loop, eager, fused wqkv/w13", ["torch"],
                       lambda a, p: run_gpt_fast(a, p, "eager")),
    "mlx-lm": ("mlx-python", "mlx-lm generate_step", ["mlx.core", "mlx_lm"], run_mlx_lm),
}


def main():
    args, (framework, reference, packages, run), csv_path = common.parse_args(
        "tinyllama", BACKENDS, warmup=2, repetitions=5, precisions=("f32", "tf32", "bf16", "f16"),
        cuda_graphs=("hf-static-compile", "gpt-fast"))
    twin = common.twin_settings(args.results, "tinyllama", "generate", args.precision, args.preset)
    args.prompt_tokens, args.gen_tokens = int(twin["prompt_tokens"]), int(twin["gen_tokens"])
    args.seed = int(twin["seed"])
    common.configure_precision(args.precision)
    row = dict(benchmark="tinyllama", framework=framework, device=args.device,
               precision=args.precision, preset=args.preset, reference=reference)
    rng = random.Random(args.seed)
    prompt = [rng.randrange(3, CONFIG["vocab_size"]) for _ in range(args.prompt_tokens)]
    times, execution = common.attempt(csv_path, row, lambda: run(args, prompt))
    settings = dict(weights=f"random (seed {args.seed})", prompt_tokens=args.prompt_tokens,
                    gen_tokens=args.gen_tokens, warmup=args.warmup, repetitions=args.repetitions,
                    sampling="greedy", execution=execution, seed=args.seed)
    common.write_rows(
        csv_path, packages=packages, settings=settings, device_name=args.device_name,
        cases=[("prompt", [t[0] for t in times], args.prompt_tokens, "tokens/s"),
               ("generate", [t[2] for t in times], args.gen_tokens, "tokens/s"),
               ("ttft", [t[1] for t in times], None, "")], **row)

if __name__ == "__main__":
    main()
