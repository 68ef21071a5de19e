#!/usr/bin/env python3
"""Fine-tuning BERT (MiniLM, the twins' offline weights) for spam
classification through each framework's own Python paths, at the twin's
configuration (sequence length, batch, learning rate, precision, seed) read
from the twin's row. One timed repetition is one training step on a batch
of real SpamAssassin emails: the batch copied to the device, forward,
backward and AdamW, as the twins' `step` case.

  hf-eager          transformers BertForSequenceClassification (SDPA), eager, AdamW(foreach=True)
  hf-compile        the same under torch.compile, AdamW(fused=True)
  hf-compile-graphs the same under torch.compile(mode="reduce-overhead") (CUDA graphs), AdamW(fused=True)
  hf-step-graph     the whole step (forward, backward, AdamW(fused=True, capturable=True))
                    captured as one torch.cuda.graph after 11 warm-up steps on a side
                    stream, autocast with cache_enabled=False, each batch copied into the
                    graph's static inputs: PyTorch's documented whole-network capture
  mlx-compile       an mlx-examples-style BERT, the training step under mx.compile

Each compiled or captured path checks that it ran so (common.check_compiled,
check_cuda_graphs; for hf-step-graph also AdamW's step count, which the
captured update advances on the GPU): where it did not, the row fails with
the reason. The CUDA-graph paths need CUDA: elsewhere they are not listed
and, run anyway, record a skipped row.

bf16 is mixed precision on the PyTorch side (float32 weights and AdamW
state, autocast to bfloat16, as the twins); MLX has no autocast, so its bf16
reference holds the whole model in bfloat16 (the row says so). Dropout 0,
as the twins.

usage: bert.py BACKEND RESULTS_DIR --precision P --preset P [--device gpu|cpu]
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def assets():
    return os.environ.get("MLX_VS_TORCH_ASSETS", os.path.join(os.getcwd(), ".cache/assets"))


def email_batches(cfg, count=4):
    """`count` batches of real emails (Subject line + body, alternately spam
    and ham), tokenised with MiniLM's tokenizer.json to seq_len."""
    from tokenizers import Tokenizer
    root = os.path.join(assets(), "spam-assassin")
    files = json.load(open(os.path.join(root, "file_list.json")))
    spam = [f for f in files if f.startswith("spam")]
    ham = [f for f in files if "ham" in f]
    tokenizer = Tokenizer.from_file(os.path.join(assets(), "minilm", "tokenizer.json"))
    tokenizer.enable_truncation(cfg["seq_len"])
    tokenizer.enable_padding(length=cfg["seq_len"])
    batches = []
    for b in range(count):
        texts, labels = [], []
        for i in range(cfg["batch_size"]):
            n = b * cfg["batch_size"] + i
            name, label = (spam[n // 2], 1) if n % 2 == 0 else (ham[n // 2], 0)
            raw = open(os.path.join(root, name), encoding="latin-1").read()
            head, _, body = raw.partition("\n\n")
            subject = re.search(r"^Subject:(.*)$", head, re.M | re.I)
            texts.append(((subject.group(1).strip() + "\n") if subject else "") + body)
            labels.append(label)
        enc = tokenizer.encode_batch(texts)
        batches.append(([e.ids for e in enc], [e.type_ids for e in enc],
                        [e.attention_mask for e in enc], labels))
    return batches


def torch_model(args, cfg):
    """transformers' BertForSequenceClassification on the MiniLM weights,
    dropout 0, on the device of `--device`: (torch, TorchDevice, model)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    target = common.torch_device(args.device)
    args.device_name = target.name
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.manual_seed(cfg["seed"])
    path = os.path.join(assets(), "minilm")
    config = BertConfig.from_pretrained(path, num_labels=2, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    model = BertForSequenceClassification.from_pretrained(path, config=config, attn_implementation="sdpa")
    return torch, target, model.to(target.type).train()


def adamw(torch, model, cfg, **kind):
    return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0, **kind)


def weights_note(args):
    return "float32, autocast bfloat16" if args.precision == "bf16" else "float32"


def run_torch(args, cfg, mode):
    torch, target, model = torch_model(args, cfg)
    device = target.type
    if mode == "graphs":
        common.require_cuda(device)
    fused = mode != "eager"
    optimizer = adamw(torch, model, cfg, **({"fused": True} if fused else {"foreach": True}))
    if mode != "eager":
        common.strict_compile(torch, cuda_graphs=mode == "graphs")
    forward = {"eager": model, "compile": torch.compile(model),
               "graphs": torch.compile(model, mode="reduce-overhead")}[mode]
    host = [tuple(torch.tensor(part) for part in batch) for batch in email_batches(cfg)]
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    state = {"i": 0}

    def step():
        state["i"] += 1
        ids, types, mask, labels = (t.to(device) for t in host[state["i"] % len(host)])
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = forward(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()

    with common.CudaGraphCount(torch) as graphs:
        samples = common.time_steps(step, target.sync, args.warmup, args.repetitions, graphs.mark)
    if mode == "graphs":
        common.check_cuda_graphs(torch, device, graphs, args.repetitions, "the compiled model")
    elif mode == "compile":
        common.check_compiled(torch, "the compiled model")
    execution = {"eager": "eager", "compile": "torch.compile (inductor)",
                 "graphs": "torch.compile reduce-overhead (CUDA graphs)"}[mode]
    peak = target.peak_memory()
    return samples, execution, "fused" if fused else "foreach", weights_note(args), peak


# Untimed training steps on a side stream before the capture, as PyTorch's
# whole-network capture recipe (CUDA graphs docs) warms up: the allocator,
# cuBLAS workspaces and the optimizer's state exist before capture.
CAPTURE_WARMUP = 11


def run_step_graph(args, cfg):
    """The whole training step (forward, backward, AdamW(fused=True,
    capturable=True)) captured as one torch.cuda.graph; each timed step
    copies its batch into the graph's static inputs and replays it."""
    torch, target, model = torch_model(args, cfg)
    common.require_cuda(target.type)
    optimizer = adamw(torch, model, cfg, fused=True, capturable=True)
    host = [tuple(torch.tensor(part) for part in batch) for batch in email_batches(cfg)]
    static = [t.to("cuda") for t in host[0]]
    # The capture recipe's autocast: its cast cache off (cached casts
    # would be freed outside the graph's memory).
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                              enabled=args.precision == "bf16", cache_enabled=False)

    def load(batch):
        for dst, src in zip(static, batch):
            dst.copy_(src)

    def train_step():
        ids, types, mask, labels = static
        with autocast:
            loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(CAPTURE_WARMUP):
            load(host[i % len(host)])
            optimizer.zero_grad(set_to_none=True)
            train_step()
    torch.cuda.current_stream().wait_stream(side)
    # Gradients allocated inside the capture, from the graph's pool: each
    # replay writes them afresh.
    optimizer.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    state = {"i": 0}

    def step():
        state["i"] += 1
        load(host[state["i"] % len(host)])
        graph.replay()

    with common.CudaGraphCount(torch) as graphs:
        with torch.cuda.graph(graph):
            train_step()
        samples = common.time_steps(step, target.sync, args.warmup, args.repetitions, graphs.mark)
    common.check_cuda_graphs(torch, "cuda", graphs, args.repetitions, "the training step", compiled=False)
    # The captured AdamW counts its steps on the GPU: one per warm-up step
    # and one per replay if the optimizer ran inside each replay.
    steps = int(optimizer.state[next(model.parameters())]["step"].item())
    if steps != CAPTURE_WARMUP + graphs.replays:
        raise common.ModeNotRun(f"AdamW counted {steps} steps after {CAPTURE_WARMUP} warm-up steps "
                                f"and {graphs.replays} replays: the update did not run in each replay")
    common.passed(f"AdamW counted {steps} steps: {CAPTURE_WARMUP} warm-up steps and one per replay")
    return (samples, f"whole step as one torch.cuda.graph ({CAPTURE_WARMUP} warm-up steps on a side stream)",
            "fused, capturable (in the graph)", weights_note(args), target.peak_memory())


def mlx_bert(cfg, mx, nn):
    """mlx-examples' bert/model.py, with a classifier on the pooled [CLS]."""
    hf = json.load(open(os.path.join(assets(), "minilm", "config.json")))
    dims, heads, eps = hf["hidden_size"], hf["num_attention_heads"], hf["layer_norm_eps"]

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiHeadAttention(dims, heads, bias=True)
            self.ln1, self.ln2 = nn.LayerNorm(dims, eps=eps), nn.LayerNorm(dims, eps=eps)
            self.linear1 = nn.Linear(dims, hf["intermediate_size"])
            self.linear2 = nn.Linear(hf["intermediate_size"], dims)
            self.gelu = nn.GELU()

        def __call__(self, x, mask):
            x = self.ln1(x + self.attention(x, x, x, mask))
            return self.ln2(x + self.linear2(self.gelu(self.linear1(x))))

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(hf["vocab_size"], dims)
            self.token_type_embeddings = nn.Embedding(hf["type_vocab_size"], dims)
            self.position_embeddings = nn.Embedding(hf["max_position_embeddings"], dims)
            self.norm = nn.LayerNorm(dims, eps=eps)

        def __call__(self, ids, types):
            positions = mx.arange(ids.shape[1])
            x = self.word_embeddings(ids) + self.position_embeddings(positions) \
                + self.token_type_embeddings(types)
            return self.norm(x)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = [Layer() for _ in range(hf["num_hidden_layers"])]
            self.pooler = nn.Linear(dims, dims)
            self.classifier = nn.Linear(dims, 2)

        def __call__(self, ids, types, mask):
            x = self.embeddings(ids, types)
            additive = (1.0 - mask[:, None, None, :].astype(x.dtype)) * -1e4
            for layer in self.encoder:
                x = layer(x, additive)
            return self.classifier(mx.tanh(self.pooler(x[:, 0])))

    model = Classifier()
    renames = [(r"^encoder\.layer\.", "encoder."), (r"attention\.self\.query", "attention.query_proj"),
               (r"attention\.self\.key", "attention.key_proj"), (r"attention\.self\.value", "attention.value_proj"),
               (r"attention\.output\.dense", "attention.out_proj"), (r"attention\.output\.LayerNorm", "ln1"),
               (r"\.output\.LayerNorm", ".ln2"), (r"intermediate\.dense", "linear1"), (r"\.output\.dense", ".linear2"),
               (r"embeddings\.LayerNorm", "embeddings.norm"), (r"^pooler\.dense", "pooler")]
    weights = []
    for name, value in mx.load(os.path.join(assets(), "minilm", "model.safetensors")).items():
        if name.endswith("position_ids"):
            continue
        for pattern, replacement in renames:
            name = re.sub(pattern, replacement, name)
        weights.append((name, value))
    from mlx.utils import tree_flatten
    expected = {name for name, _ in tree_flatten(model.parameters()) if not name.startswith("classifier.")}
    loaded = {name for name, _ in weights}
    if expected != loaded:
        raise ValueError(f"MiniLM checkpoint vs model: missing {sorted(expected - loaded)}, "
                         f"unused {sorted(loaded - expected)}")
    model.load_weights(weights, strict=False)  # the classifier keeps its seeded initialisation
    return model


def run_mlx(args, cfg):
    from functools import partial
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    args.device_name = common.mlx_device(mx, args.device)
    common.check_mlx_mode(args.device_name, compiled=True)
    mx.random.seed(cfg["seed"])
    model = mlx_bert(cfg, mx, nn)
    if args.precision == "bf16":
        model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    optimizer = optim.AdamW(learning_rate=cfg["lr"], weight_decay=0.0, bias_correction=True)

    def loss_fn(model, ids, types, mask, labels):
        logits = model(ids, types, mask).astype(mx.float32)
        return nn.losses.cross_entropy(logits, labels, reduction="mean")

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(ids, types, mask, labels):
        loss, grads = loss_and_grad(model, ids, types, mask, labels)
        optimizer.update(model, grads)
        return loss

    host = email_batches(cfg)
    counter = {"i": 0}

    def step():
        counter["i"] += 1
        ids, types, mask, labels = (mx.array(part) for part in host[counter["i"] % len(host)])
        loss = train_step(ids, types, mask, labels)
        mx.eval(state, loss)

    samples = common.time_steps(step, mx.synchronize, args.warmup, args.repetitions)
    weights = "bfloat16 throughout (MLX has no autocast)" if args.precision == "bf16" else "float32"
    return samples, "mx.compile of the step", "fused (compiled into the step)", weights, mx.get_peak_memory()


BACKENDS = {
    "hf-eager": ("torch-python", "transformers eager + AdamW(foreach)", ["torch", "transformers"],
                 lambda a, c: run_torch(a, c, "eager")),
    "hf-compile": ("torch-python", "transformers torch.compile + AdamW(fused)", ["torch", "transformers"],
                   lambda a, c: run_torch(a, c, "compile")),
    "hf-compile-graphs": ("torch-python", "transformers torch.compile reduce-overhead + AdamW(fused)",
                          ["torch", "transformers"], lambda a, c: run_torch(a, c, "graphs")),
    "hf-step-graph": ("torch-python", "transformers whole step as one torch.cuda.graph + AdamW(fused, capturable)",
                      ["torch", "transformers"], run_step_graph),
    "mlx-compile": ("mlx-python", "mlx-examples-style BERT mx.compile", ["mlx.core"], run_mlx),
}


def main():
    args, (framework, reference, packages, run), csv_path = common.parse_args(
        "bert", BACKENDS, warmup=5, repetitions=30, cuda_graphs=("hf-compile-graphs", "hf-step-graph"))
    twin = common.twin_settings(args.results, "bert", "step", args.precision, args.preset)
    cfg = dict(seq_len=int(twin["seq_len"]), batch_size=int(twin["batch_size"]), lr=float(twin["lr"]),
               seed=int(twin["seed"]))
    common.configure_precision(args.precision)
    row = dict(benchmark="bert", framework=framework, device=args.device,
               precision=args.precision, preset=args.preset, reference=reference)
    samples, execution, optimizer, weights, peak = common.attempt(csv_path, row, lambda: run(args, cfg))
    settings = dict(cfg, model="sentence-transformers/all-MiniLM-L6-v2 (registry copy)", execution=execution,
                    optimizer=optimizer, weights=weights, warmup=args.warmup, repetitions=args.repetitions,
                    data="SpamAssassin emails, 4 batches in turn")
    common.write_rows(csv_path, packages=packages, settings=settings, device_name=args.device_name,
                      cases=[("step", samples, cfg["batch_size"], "samples/s")], peak_memory=peak, **row)

if __name__ == "__main__":
    main()
