#!/usr/bin/env python3
"""Training bench-lm-train's transformer language model through each
framework's own Python paths, at the twin's exact configuration (layers,
dim, heads, FFN, context, batch, vocabulary, AdamW settings, precision,
seed) read from the twin's row. One timed repetition is one training step:
forward, backward, AdamW update and reading the loss, as the twins.

  torch-eager     nanoGPT-style: eager, AdamW(foreach=True)
  torch-compile   nanoGPT-style: torch.compile(model), AdamW(fused=True)
  mlx-compile     mlx-examples transformer_lm: the step under mx.compile (explicit additive mask)
  mlx-compile-causal  the same, attention masked by MLX's fused causal kernel (as the twin)

torch-compile checks that it ran compiled (common.check_compiled: no graph
break or Dynamo fallback), the MLX paths that nothing in the environment
turns mx.compile or MLX's CUDA graphs off; else the row fails with why.

The model is the twins': token embedding plus sinusoidal positions (MLX's
formula), pre-norm blocks (causal SDPA, no projection biases, ReLU FFN),
final LayerNorm, untied output layer; cross-entropy in float32. Weights
are each framework's own seeded initialisation and the batches seeded
random token ids of the twins' shape (a step's speed does not depend on
their values; the twins' rows carry the Shakespeare losses).

usage: lm_train.py BACKEND RESULTS_DIR --precision P --preset P [--device gpu|cpu]
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def sinusoidal(context, dim):
    """MLX's SinusoidalPositionalEncoding table (cos and sin halves)."""
    half = dim // 2
    table = []
    for pos in range(context):
        freqs = [math.exp(-i * math.log(10000.0) / (half - 1)) * pos for i in range(half)]
        table.append([math.sin(f) for f in freqs] + [math.cos(f) for f in freqs])
    return table


def learning_rate(cfg, step):
    return cfg["learning_rate"] * min(1.0, step / max(1, cfg["warmup_steps"]))


def run_torch(args, cfg, compiled):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    target = common.torch_device(args.device)
    device, args.device_name = target.type, target.name
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.manual_seed(cfg["seed"])
    d, h = cfg["dim"], cfg["heads"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
            self.linear1, self.linear2 = nn.Linear(d, cfg["ffn"]), nn.Linear(cfg["ffn"], d)

        def forward(self, x):
            b, t, _ = x.shape
            y = self.ln1(x)
            split = lambda z: z.view(b, t, h, d // h).transpose(1, 2)  # noqa: E731
            a = F.scaled_dot_product_attention(split(self.q(y)), split(self.k(y)), split(self.v(y)),
                                               is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
            return x + self.linear2(F.relu(self.linear1(self.ln2(x))))

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(cfg["vocab"], d)
            self.layers = nn.ModuleList(Block() for _ in range(cfg["layers"]))
            self.ln = nn.LayerNorm(d, eps=1e-5)
            self.out_proj = nn.Linear(d, cfg["vocab"])
            self.register_buffer("positions", torch.tensor(sinusoidal(cfg["context"], d)), persistent=False)

        def forward(self, idx, targets):
            x = self.embedding(idx) + self.positions[: idx.shape[1]]
            for layer in self.layers:
                x = layer(x)
            logits = self.out_proj(self.ln(x))
            return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))

    model = LM().to(device=device, dtype=dtype).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate(cfg, 1), betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=cfg["weight_decay"],
                                  **({"fused": True} if compiled else {"foreach": True}))
    if compiled:
        common.strict_compile(torch)
    forward = torch.compile(model) if compiled else model
    gen = torch.Generator().manual_seed(cfg["seed"])
    shape = (cfg["batch_size"], cfg["context"])
    batches = [(torch.randint(0, cfg["vocab"], shape, generator=gen).to(device),
                torch.randint(0, cfg["vocab"], shape, generator=gen).to(device)) for _ in range(4)]
    state = {"step": 0}

    def step():
        state["step"] += 1
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, state["step"])
        x, y = batches[state["step"] % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = forward(x, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    samples = common.time_steps(step, target.sync, args.warmup, args.repetitions)
    if compiled:
        common.check_compiled(torch, "the compiled model")
    peak = target.peak_memory()
    execution = "torch.compile (inductor)" if compiled else "eager"
    return samples, execution, "fused" if compiled else "foreach", peak


def run_mlx(args, cfg, causal=False):
    from functools import partial
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    args.device_name = common.mlx_device(mx, args.device)
    common.check_mlx_mode(args.device_name, compiled=True)
    mx.random.seed(cfg["seed"])
    d = cfg["dim"]

    class TransformerLM(nn.Module):
        """mlx-examples' transformer_lm, with the FFN width of the twins."""
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(cfg["vocab"], d)
            self.pe = nn.SinusoidalPositionalEncoding(d)
            self.transformer = nn.TransformerEncoder(cfg["layers"], d, cfg["heads"],
                                                     mlp_dims=cfg["ffn"], norm_first=True)
            self.out_proj = nn.Linear(d, cfg["vocab"])

        def __call__(self, x):
            length = x.shape[1]
            x = self.embedding(x)
            # mlx-examples adds the float32 positions as they are, which
            # promotes a bfloat16 model's activations to float32 (the
            # campaign at bcf3930 measured that); cast them as the twins do.
            x = x + self.pe(mx.arange(length)).astype(x.dtype)
            # mlx-examples passes an explicit additive mask; "causal" lets
            # MLX's fused attention kernel mask by itself (as the twin does).
            mask = "causal" if causal else \
                nn.MultiHeadAttention.create_additive_causal_mask(length).astype(x.dtype)
            return self.out_proj(self.transformer(x, mask))

    model = TransformerLM()
    if args.precision == "bf16":
        model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    schedule = optim.linear_schedule(cfg["learning_rate"] / max(1, cfg["warmup_steps"]),
                                     cfg["learning_rate"], cfg["warmup_steps"])
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=cfg["weight_decay"], bias_correction=True)

    def loss_fn(model, x, y):
        logits = model(x).astype(mx.float32)
        return nn.losses.cross_entropy(logits, y, reduction="mean")

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    shape = (cfg["batch_size"], cfg["context"])
    key = mx.random.key(cfg["seed"])
    batches = []
    for i in range(4):
        kx, ky = mx.random.split(mx.random.fold_in(key, i) if hasattr(mx.random, "fold_in") else key)
        batches.append((mx.random.randint(0, cfg["vocab"], shape, key=kx),
                        mx.random.randint(0, cfg["vocab"], shape, key=ky)))
    counter = {"step": 0}

    def step():
        counter["step"] += 1
        x, y = batches[counter["step"] % len(batches)]
        loss = train_step(x, y)
        mx.eval(state, loss)
        return loss.item()

    samples = common.time_steps(step, mx.synchronize, args.warmup, args.repetitions)
    execution = "mx.compile of the step" + (", fused causal attention" if causal else ", additive mask")
    return samples, execution, "fused (compiled into the step)", mx.get_peak_memory()


BACKENDS = {
    "torch-eager": ("torch-python", "nanoGPT-style eager + AdamW(foreach)", ["torch"],
                    lambda a, c: run_torch(a, c, False)),
    "torch-compile": ("torch-python", "nanoGPT-style torch.compile + AdamW(fused)", ["torch"],
                      lambda a, c: run_torch(a, c, True)),
    "mlx-compile": ("mlx-python", "mlx-examples transformer_lm mx.compile", ["mlx.core"], run_mlx),
    "mlx-compile-causal": ("mlx-python", "mlx-examples transformer_lm mx.compile, causal SDPA", ["mlx.core"],
                           lambda a, c: run_mlx(a, c, causal=True)),
}


def main():
    args, (framework, reference, packages, run), csv_path = common.parse_args(
        "lm-train", BACKENDS, warmup=3, repetitions=10)
    twin = common.twin_settings(args.results, "lm-train", "step", args.precision, args.preset)
    cfg = {k: int(twin[k]) for k in ("layers", "dim", "heads", "ffn", "context", "batch_size",
                                     "vocab", "warmup_steps", "seed")}
    cfg.update(learning_rate=float(twin["learning_rate"]), weight_decay=float(twin["weight_decay"]))
    common.configure_precision(args.precision)
    row = dict(benchmark="lm-train", framework=framework, device=args.device,
               precision=args.precision, preset=args.preset, reference=reference)
    samples, execution, optimizer, peak = common.attempt(csv_path, row, lambda: run(args, cfg))
    settings = dict(cfg, execution=execution, optimizer=optimizer, warmup=args.warmup,
                    repetitions=args.repetitions,
                    data="seeded random token ids of the twins' shape",
                    initial_weights="the framework's own seeded initialisation")
    tokens = cfg["batch_size"] * cfg["context"]
    common.write_rows(csv_path, packages=packages, settings=settings, device_name=args.device_name,
                      cases=[("step", samples, tokens, "tokens/s")], peak_memory=peak, **row)

if __name__ == "__main__":
    main()
