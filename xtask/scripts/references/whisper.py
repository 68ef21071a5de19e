#!/usr/bin/env python3
"""Whisper speech to text through each framework's own Python paths, on the
twins' weights (the CTranslate2 tiny.en registry copy, converted here in
memory: no Hub) and the twins' clip, at the twin's precision. One timed
repetition is the twins' `transcribe` case: 16 kHz samples to text (log-mel,
encoder, greedy decoding without timestamps, detokenising); reading the WAV
and loading the model are not timed.

  hf-eager          transformers WhisperForConditionalGeneration.generate, greedy, eager
  hf-static-compile the same with a static cache and torch.compile(mode="reduce-overhead",
                    fullgraph=True) on the forward (transformers' documented fast path)
  hf-static-compile-default  the same, torch.compile's default mode (no CUDA graphs): on the
                    H200 (torch 2.11, transformers 5.17) reduce-overhead skipped its graphs
                    ("mutated inputs": the static cache's length counter) and the process
                    crashed (segmentation fault), so this is the compiled path that runs
  static-decoder    our own static-cache Whisper (whisper_static.py), written as gpt-fast
                    writes Llama: caches as module buffers, the encoder and the decoding
                    step (logits, suppression, argmax) each under
                    torch.compile(mode="reduce-overhead", fullgraph=True): CUDA graphs;
                    the same weights and greedy rules as transformers, so the same text
  static-decoder-default  the same under torch.compile's default mode (no CUDA graphs)
  static-decoder-eager    the same without torch.compile
  mlx-whisper       mlx_whisper.transcribe (temperature 0, no timestamps); mlx-whisper
                    compiles only its sampler (unused at temperature 0), as shipped

Every row records its transcript and whether it equals the twin's. Each
compiled path checks that it ran so (common.check_compiled,
check_cuda_graphs): a graph break, a Dynamo fallback, a skipped CUDA graph
or a timed call that replayed none fails the row with the reason. Where
there is no CUDA the CUDA-graph paths are not listed and, run anyway,
record a skipped row.

mlx-whisper's half precision is float16; for bf16 cells its two uses of
`mx.float16` (transcribe.py, decoding.py) are pointed at bfloat16, so the
reference computes in the twins' dtype. mlx-whisper imports numba and scipy
only for word timestamps, which stay off: where those packages are not
installed (the GPU machine), empty stand-ins are registered and the row says
so.

usage: whisper.py BACKEND RESULTS_DIR --precision P --preset P [--device gpu|cpu]
"""
import collections
import json
import os
import re
import struct
import sys
import tempfile
import types
import wave

# numpy, torch and mlx are imported where they are used, so that
# `--backends-for` runs on any Python.

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SAMPLE_RATE = 16000

# What a backend's set-up returns: `transcribe` (samples to text) and the
# device's `sync`; `timed_from` is called where timing begins and `check`
# after it (the mode checks: common.check_compiled, check_cuda_graphs).
Transcriber = collections.namedtuple(
    "Transcriber", "transcribe sync execution peak_memory timed_from check", defaults=(None, None))


def assets():
    return os.environ.get("MLX_VS_TORCH_ASSETS", os.path.join(os.getcwd(), ".cache/assets"))


def model_dir():
    return os.path.join(assets(), "whisper-tiny-en-ct2")


def read_wav(path):
    """16 kHz mono 16-bit PCM as float32 in [-1, 1), as the twins read it."""
    import numpy as np
    with wave.open(path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM, got {w.getframerate()} Hz, "
                             f"{w.getnchannels()} channels, {8 * w.getsampwidth()}-bit")
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0


def read_ct2(path):
    """CTranslate2's model.bin (the layout crates/bench-whisper/src/ct2.rs
    documents): {name: float32 or int array}, {alias: target}."""
    import numpy as np
    data = open(path, "rb").read()
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise ValueError(f"{path}: truncated at offset {pos}")
        pos += n
        return data[pos - n:pos]

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def string():
        return take(u("H")).rstrip(b"\0").decode()

    version = u("I")
    if version not in (4, 5, 6):
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
    spec, _revision = string(), u("I")
    if spec != "WhisperSpec":
        raise ValueError(f"{path} holds a {spec}, not a Whisper model")
    dtypes = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
    variables = {}
    for _ in range(u("I")):
        name = string()
        shape = [u("I") for _ in range(u("B"))]
        dtype_id = u("B")
        if dtype_id not in dtypes:
            raise ValueError(f"{path}: variable {name} has dtype id {dtype_id} (bf16 or unknown)")
        raw = take(u("I"))
        variables[name] = np.frombuffer(raw, dtypes[dtype_id]).reshape(shape)
    aliases = {string(): string() for _ in range(u("I"))}
    return variables, aliases


def openai_weights(variables):
    """The twins' weight set (OpenAI's names, float32): fused q|k|v and k|v
    split by rows, key biases dropped (CTranslate2 stores zeros)."""
    import numpy as np
    out = {}

    def get(name):
        return variables[name].astype(np.float32)

    def linear(to, frm):
        out[f"{to}.weight"], out[f"{to}.bias"] = get(f"{frm}/weight"), get(f"{frm}/bias")

    def norm(to, frm):
        out[f"{to}.weight"], out[f"{to}.bias"] = get(f"{frm}/gamma"), get(f"{frm}/beta")

    def fused(to, parts, frm):
        for part, w, b in zip(parts, np.split(get(f"{frm}/weight"), len(parts)),
                              np.split(get(f"{frm}/bias"), len(parts))):
            out[f"{to}.{part}.weight"] = w
            if part == "key":
                if np.any(b != 0):
                    raise ValueError(f"{frm}/bias: the key bias is not zero")
            else:
                out[f"{to}.{part}.bias"] = b

    def block(to, frm, cross):
        att = f"{frm}/self_attention"
        norm(f"{to}.attn_ln", f"{att}/layer_norm")
        fused(f"{to}.attn", ["query", "key", "value"], f"{att}/linear_0")
        linear(f"{to}.attn.out", f"{att}/linear_1")
        if cross:
            att = f"{frm}/attention"
            norm(f"{to}.cross_attn_ln", f"{att}/layer_norm")
            linear(f"{to}.cross_attn.query", f"{att}/linear_0")
            fused(f"{to}.cross_attn", ["key", "value"], f"{att}/linear_1")
            linear(f"{to}.cross_attn.out", f"{att}/linear_2")
        norm(f"{to}.mlp_ln", f"{frm}/ffn/layer_norm")
        linear(f"{to}.mlp1", f"{frm}/ffn/linear_0")
        linear(f"{to}.mlp2", f"{frm}/ffn/linear_1")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    out["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    layers = lambda side: len({n.split("/")[1] for n in variables
                               if re.match(rf"{side}/layer_\d+/", n)})
    for i in range(layers("encoder")):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    out["decoder.token_embedding"] = get("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(layers("decoder")):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    dims = dict(n_mels=out["encoder.conv1.weight"].shape[1],
                n_audio_ctx=out["encoder.positional_embedding"].shape[0],
                n_audio_state=out["encoder.conv1.weight"].shape[0],
                n_audio_head=int(variables["encoder/num_heads"]), n_audio_layer=layers("encoder"),
                n_vocab=out["decoder.token_embedding"].shape[0],
                n_text_ctx=out["decoder.positional_embedding"].shape[0],
                n_text_state=out["decoder.token_embedding"].shape[1],
                n_text_head=int(variables["decoder/num_heads"]), n_text_layer=layers("decoder"))
    return out, dims


def load_model():
    variables, _aliases = read_ct2(os.path.join(model_dir(), "model.bin"))
    weights, dims = openai_weights(variables)
    config = json.load(open(os.path.join(model_dir(), "config.json")))
    as_list = lambda v: json.loads(v) if isinstance(v, str) else v
    suppress = dict(suppress_tokens=as_list(config["suppress_ids"]),
                    begin_suppress_tokens=as_list(config["suppress_ids_begin"]))
    return weights, dims, suppress


def detokenizer():
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(os.path.join(model_dir(), "tokenizer.json"))
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True).strip()


HF_RENAMES = [("encoder.positional_embedding", "encoder.embed_positions.weight"),
              ("decoder.positional_embedding", "decoder.embed_positions.weight"),
              ("decoder.token_embedding", "decoder.embed_tokens.weight"), (".blocks.", ".layers."),
              (".cross_attn_ln.", ".encoder_attn_layer_norm."), (".cross_attn.", ".encoder_attn."),
              (".attn_ln.", ".self_attn_layer_norm."), (".attn.", ".self_attn."), (".query.", ".q_proj."),
              (".key.", ".k_proj."), (".value.", ".v_proj."), (".out.", ".out_proj."),
              (".mlp_ln.", ".final_layer_norm."), (".mlp1.", ".fc1."), (".mlp2.", ".fc2."),
              ("encoder.ln_post.", "encoder.layer_norm."), ("decoder.ln.", "decoder.layer_norm.")]


def hf_name(name):
    for old, new in HF_RENAMES:
        name = name.replace(old, new)
    return "model." + name


def run_torch(args, audio, compile_mode):
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration)
    target = common.torch_device(args.device)
    device, args.device_name = target.type, target.name
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    weights, d, suppress = load_model()
    config = WhisperConfig(
        vocab_size=d["n_vocab"], num_mel_bins=d["n_mels"], d_model=d["n_audio_state"],
        encoder_layers=d["n_audio_layer"], encoder_attention_heads=d["n_audio_head"],
        decoder_layers=d["n_text_layer"], decoder_attention_heads=d["n_text_head"],
        encoder_ffn_dim=4 * d["n_audio_state"], decoder_ffn_dim=4 * d["n_text_state"],
        max_source_positions=d["n_audio_ctx"], max_target_positions=d["n_text_ctx"],
        decoder_start_token_id=50257, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
        dropout=0.0)
    model = WhisperForConditionalGeneration(config)
    state = {hf_name(k): torch.from_numpy(v) for k, v in weights.items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"converted tiny.en vs transformers' Whisper: missing {missing}, unused {unexpected}")
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    max_new = max_new_tokens(d)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=50257, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
        no_timestamps_token_id=50362, is_multilingual=False, max_new_tokens=max_new, **suppress)
    if compile_mode == "reduce-overhead":
        common.require_cuda(device)
    if compile_mode:
        common.strict_compile(torch, cuda_graphs=compile_mode == "reduce-overhead")
        model.generation_config.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode=compile_mode, fullgraph=True)
    features = WhisperFeatureExtractor(feature_size=d["n_mels"])
    decode = detokenizer()
    graphs = common.CudaGraphCount(torch).__enter__()

    @torch.inference_mode()
    def transcribe():
        mel = features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", device=device).input_features
        ids = model.generate(mel.to(device=device, dtype=dtype), do_sample=False, num_beams=1,
                             return_timestamps=False)
        return decode(ids[0].tolist())

    def check():
        graphs.__exit__()
        if compile_mode == "reduce-overhead":
            # At least a replay per timed transcription.
            common.check_cuda_graphs(torch, device, graphs, args.repetitions, "transformers' compiled forward")
        elif compile_mode:
            common.check_compiled(torch, "transformers' compiled forward")

    execution = {None: "eager, dynamic cache",
                 "reduce-overhead": "torch.compile reduce-overhead fullgraph, static cache (CUDA graphs)",
                 "default": "torch.compile fullgraph (inductor, no CUDA graphs), static cache"}[compile_mode]
    return Transcriber(transcribe, target.sync, execution, target.peak_memory, graphs.mark, check)


STATIC_EXECUTION = {
    "eager": "own static-cache decoder, eager",
    "default": "own static-cache decoder, torch.compile fullgraph encoder and decoding step "
               "(Inductor, no CUDA graphs)",
    "graphs": "own static-cache decoder, torch.compile reduce-overhead fullgraph encoder and "
              "decoding step (CUDA graphs)",
}


def run_static(args, audio, mode):
    """whisper_static's decoder on transformers' log-mel features: `mode`
    eager, default (torch.compile) or graphs (reduce-overhead, CUDA
    graphs); the compiled modes are checked to have run so."""
    import torch
    from transformers import WhisperFeatureExtractor
    import whisper_static
    target = common.torch_device(args.device)
    device, args.device_name = target.type, target.name
    if mode == "graphs":
        common.require_cuda(device)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    weights, d, suppress = load_model()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model = whisper_static.static_whisper(torch, weights, d, dtype, device, suppress)
    encode, step = model.encode, model.step
    if mode != "eager":
        common.strict_compile(torch, cuda_graphs=mode == "graphs")
        options = dict(fullgraph=True, **({"mode": "reduce-overhead"} if mode == "graphs" else {}))
        encode, step = torch.compile(model.encode, **options), torch.compile(model.step, **options)
    features = WhisperFeatureExtractor(feature_size=d["n_mels"])
    decode = detokenizer()
    graphs = common.CudaGraphCount(torch).__enter__()
    calls = {"timed": 0, "on": False}

    def timed_from():
        graphs.mark()
        calls["on"] = True

    # no_grad, as gpt-fast decodes (not inference_mode).
    @torch.no_grad()
    def transcribe():
        mel = features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", device=device).input_features
        ids, steps = whisper_static.greedy(torch, model, mel.to(device=device, dtype=dtype),
                                           max_new_tokens(d), encode, step)
        if calls["on"]:
            calls["timed"] += 1 + steps  # the encoder's graph and each step's
        return decode(ids)

    def check():
        graphs.__exit__()
        if mode == "graphs":
            common.check_cuda_graphs(torch, device, graphs, calls["timed"], "the encoder and decoding step")
        elif mode == "default":
            common.check_compiled(torch, "the encoder and decoding step")

    return Transcriber(transcribe, target.sync, STATIC_EXECUTION[mode], target.peak_memory, timed_from, check)


def max_new_tokens(d):
    """transformers' generate limit here: half the text context."""
    return min(d["n_text_ctx"] // 2, d["n_text_ctx"] - 2)


class _HalfIsBfloat16(types.ModuleType):
    """mlx.core, except that `float16` is bfloat16 (see the module doc)."""

    def __init__(self, mx):
        super().__init__("mlx.core")
        self._mx = mx
        self.float16 = mx.bfloat16

    def __getattr__(self, name):
        return getattr(self._mx, name)


def stand_ins():
    """Registers empty numba/scipy.signal where missing; returns their names."""
    missing = []
    for name in ("numba", "scipy"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if "numba" in missing:
        numba = types.ModuleType("numba")
        numba.jit = lambda *a, **k: (lambda f: f)
        sys.modules["numba"] = numba
    if "scipy" in missing:
        scipy = types.ModuleType("scipy")
        scipy.signal = types.ModuleType("scipy.signal")
        sys.modules["scipy"], sys.modules["scipy.signal"] = scipy, scipy.signal
    return missing


def run_mlx(args, audio):
    missing = stand_ins()
    import mlx.core as mx
    import mlx_whisper
    import mlx_whisper.decoding
    # The module, not the function that mlx_whisper/__init__.py exports
    # under the same name.
    transcribe_module = sys.modules["mlx_whisper.transcribe"]
    args.device_name = common.mlx_device(mx, args.device)
    # mlx-whisper compiles only its sampler, which temperature 0 does not use.
    common.check_mlx_mode(args.device_name, compiled=False)
    weights, d, _suppress = load_model()
    dtype = {"bf16": mx.bfloat16}.get(args.precision, mx.float32)
    if args.precision == "bf16":
        transcribe_module.mx = mlx_whisper.decoding.mx = _HalfIsBfloat16(mx)
    # mlx-whisper's folder layout: config.json (ModelDimensions) and
    # weights.safetensors; MLX's Conv1d weight is (out, kernel, in), and the
    # encoder's sinusoidal positions are computed, not loaded.
    folder = tempfile.mkdtemp(prefix="mlx-whisper-tiny-en-")
    json.dump(d, open(os.path.join(folder, "config.json"), "w"))
    names = {"decoder.token_embedding": "decoder.token_embedding.weight"}
    arrays = {names.get(k, k): mx.array(v.transpose(0, 2, 1) if k.startswith("encoder.conv") and v.ndim == 3
                                        else v).astype(dtype)
              for k, v in weights.items() if k != "encoder.positional_embedding"}
    mx.save_safetensors(os.path.join(folder, "weights.safetensors"), arrays)
    half = args.precision == "bf16"

    def transcribe():
        result = mlx_whisper.transcribe(audio, path_or_hf_repo=folder, temperature=0.0, fp16=half,
                                        without_timestamps=True, word_timestamps=False, verbose=None)
        return result["text"].strip()

    execution = "mlx-whisper transcribe (lazy graph, no mx.compile, as shipped)"
    if missing:
        execution += f"; stand-ins for {', '.join(missing)} (word timestamps only)"
    return Transcriber(transcribe, mx.synchronize, execution, mx.get_peak_memory)


BACKENDS = {
    "hf-eager": ("torch-python", "transformers generate eager", ["torch", "transformers"],
                 lambda a, audio: run_torch(a, audio, None)),
    "hf-static-compile": ("torch-python", "transformers generate static cache + torch.compile reduce-overhead",
                          ["torch", "transformers"], lambda a, audio: run_torch(a, audio, "reduce-overhead")),
    "hf-static-compile-default": ("torch-python", "transformers generate static cache + torch.compile",
                                  ["torch", "transformers"], lambda a, audio: run_torch(a, audio, "default")),
    "static-decoder": ("torch-python", "own static-cache decoder, torch.compile reduce-overhead",
                       ["torch", "transformers"], lambda a, audio: run_static(a, audio, "graphs")),
    "static-decoder-default": ("torch-python", "own static-cache decoder, torch.compile",
                               ["torch", "transformers"], lambda a, audio: run_static(a, audio, "default")),
    "static-decoder-eager": ("torch-python", "own static-cache decoder, eager",
                             ["torch", "transformers"], lambda a, audio: run_static(a, audio, "eager")),
    "mlx-whisper": ("mlx-python", "mlx-whisper transcribe", ["mlx.core", "mlx_whisper"], run_mlx),
}


def main():
    args, (framework, reference, packages, run), csv_path = common.parse_args(
        "whisper", BACKENDS, warmup=2, repetitions=10, precisions=("f32", "tf32", "bf16"),
        cuda_graphs=("hf-static-compile", "static-decoder"))
    twin = common.twin_settings(args.results, "whisper", "transcribe", args.precision, args.preset)
    common.configure_precision(args.precision)
    row = dict(benchmark="whisper", framework=framework, device=args.device,
               precision=args.precision, preset=args.preset, reference=reference)
    clip = os.path.join(assets(), "jfk", twin["audio"])
    audio = read_wav(clip)
    t = common.attempt(csv_path, row, lambda: run(args, audio))
    texts = []
    samples = common.attempt(csv_path, row, lambda: common.time_steps(
        lambda: texts.append(t.transcribe()), t.sync, args.warmup, args.repetitions, t.timed_from))
    if t.check is not None:
        common.attempt(csv_path, row, t.check)
    text = texts[-1]
    # The twin's row stores the transcript with ';' and '=' replaced.
    equal = text.replace(";", ",").replace("=", "-") == twin["transcript"]
    if not equal:
        print(f"whisper [{reference}]: transcript differs from the twin's:\n  reference: {text}\n"
              f"  twin:      {twin['transcript']}", flush=True)
    seconds = len(audio) / SAMPLE_RATE
    settings = dict(model=twin["model"], origin=twin["origin"], audio=twin["audio"],
                    audio_seconds=f"{seconds:.3f}", execution=t.execution, warmup=args.warmup,
                    repetitions=args.repetitions, transcript=text.replace("=", "-"),
                    transcript_equals_twin=str(equal).lower(),
                    timed="log-mel + encoder + greedy decode without timestamps + detokenise")
    common.write_rows(csv_path, packages=packages, settings=settings, device_name=args.device_name,
                      cases=[("transcribe", samples, seconds, "audio s/s")], peak_memory=t.peak_memory(), **row)


if __name__ == "__main__":
    main()
