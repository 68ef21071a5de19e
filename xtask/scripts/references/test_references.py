#!/usr/bin/env python3
"""Tests of the Python references' own logic (unittest, no pytest).

  ModeChecks   the mode checks' verdicts on given counters: plain Python,
               no torch; `cargo xtask test` runs them (reference_runs.rs).
  TorchCpu     with torch, on the CPU (the references' venv): gpt-fast's
               fused model computes what the unfused one does; a graph
               break fails check_compiled; the static-cache Whisper
               transcribes as transformers does (needs .cache/assets); the
               CUDA-graph paths refuse the CPU.
  TorchCuda    on a CUDA GPU: each new path at small sizes really captures
               and replays its CUDA graphs, and a path that cannot is
               refused with its reason.

  python3 xtask/scripts/references/test_references.py [-v] [CLASS]

Assets are found as the references find them (MLX_VS_TORCH_ASSETS, else
.cache/assets under the working directory).
"""
import importlib.util
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None


def cuda_available():
    if not HAS_TORCH:
        return False
    import torch
    return torch.cuda.is_available()


def assets_present(*names):
    root = os.environ.get("MLX_VS_TORCH_ASSETS", os.path.join(os.getcwd(), ".cache/assets"))
    return all(os.path.exists(os.path.join(root, n)) for n in names)


class FakeCount:
    def __init__(self, captures, replays, captures_since, replays_since):
        self.captures, self.replays = captures, replays
        self.captures_since, self.replays_since = captures_since, replays_since


class ModeChecks(unittest.TestCase):
    """The verdicts, from counters shaped as torch._dynamo.utils.counters."""

    def compiled(self, **extra):
        counters = {"stats": {"unique_graphs": 1, "calls_captured": 10}, "graph_break": {},
                    "inductor": {}, "frames": {"total": 3, "ok": 3}}
        counters.update(extra)
        return counters

    def test_a_clean_compile_has_no_fault(self):
        self.assertEqual(common.dynamo_faults(self.compiled()), [])

    def test_graph_breaks_are_named_with_their_reasons(self):
        faults = common.dynamo_faults(self.compiled(graph_break={"data-dependent branch": 2}))
        self.assertEqual(len(faults), 1)
        self.assertIn("2 graph break(s)", faults[0])
        self.assertIn("data-dependent branch", faults[0])

    def test_frames_run_eagerly_and_nothing_compiled_are_faults(self):
        faults = common.dynamo_faults(self.compiled(frames={"total": 5, "ok": 3},
                                                    unimplemented={"recompile limit": 1}))
        self.assertTrue(any("2 frame(s)" in f and "recompile limit" in f for f in faults), faults)
        self.assertIn("compiled no graph", " ".join(common.dynamo_faults({})))

    def test_a_skipped_cuda_graph_is_a_fault(self):
        faults = common.dynamo_faults(self.compiled(inductor={"cudagraph_skips": 1}))
        self.assertEqual(faults, ["Inductor skipped 1 CUDA graph(s)"])

    def test_cuda_graphs_must_be_captured_before_timing_and_replayed_per_call(self):
        self.assertEqual(common.cuda_graph_faults("cuda", FakeCount(1, 12, 0, 10), 10), [])
        self.assertIn("need CUDA", common.cuda_graph_faults("cpu", FakeCount(0, 0, 0, 0), 10)[0])
        self.assertEqual(common.cuda_graph_faults("cuda", FakeCount(0, 0, 0, 0), 10),
                         ["no CUDA graph was captured", "0 CUDA graph replays for 10 timed calls"])
        recaptured = common.cuda_graph_faults("cuda", FakeCount(2, 12, 1, 10), 10)
        self.assertEqual(len(recaptured), 1)
        self.assertIn("captured during the timed steps", recaptured[0])
        self.assertIn("9 CUDA graph replays for 10",
                      common.cuda_graph_faults("cuda", FakeCount(1, 9, 0, 9), 10)[0])

    def test_rows_record_what_the_checks_found(self):
        import json
        import tempfile
        common.VERDICTS.clear()
        common.passed("the step: 1 CUDA graph(s) captured before timing, 4 replays in 4 timed calls")
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "reference.csv")
            common.write_rows(path, benchmark="bert", framework="torch-python", device="gpu",
                              precision="bf16", preset="quick", reference="r", packages=[],
                              cases=[("step", [1.0, 2.0], None, "")], settings={}, device_name="")
            with open(os.path.splitext(path)[0] + ".jsonl") as f:
                row = json.loads(f.readline())
        common.VERDICTS.clear()
        self.assertIn("4 replays in 4 timed calls", row["settings"]["mode_check"])

    def test_rows_carry_the_knobs_of_the_twin_row_they_ran_beside(self):
        import csv
        import json
        import tempfile
        with tempfile.TemporaryDirectory() as folder:
            twins = os.path.join(folder, "twins.csv")
            with open(twins, "w", newline="") as f:
                writer = csv.DictWriter(f, ["benchmark", "case", "framework", "status", "precision",
                                            "preset", "timestamp", "settings", "knobs"])
                writer.writeheader()
                writer.writerow(dict(benchmark="bert", case="step", framework="torch", status="ok",
                                     precision="bf16", preset="paper", timestamp="t",
                                     settings="seq_len=128;batch_size=32;lr=5e-05;seed=0",
                                     knobs="batch_size=32;time_to_accuracy=false"))
            settings = common.twin_settings(twins, "bert", "step", "bf16", "paper")
            self.assertEqual(settings["batch_size"], "32")
            path = os.path.join(folder, "reference.csv")
            common.write_rows(path, benchmark="bert", framework="torch-python", device="gpu",
                              precision="bf16", preset="paper", reference="r", packages=[],
                              cases=[("step", [1.0, 2.0], None, "")], settings=settings,
                              device_name="")
            with open(os.path.splitext(path)[0] + ".jsonl") as f:
                row = json.loads(f.readline())
            with open(path, newline="") as f:
                exported = next(csv.DictReader(f))
        common.TWIN_KNOBS.clear()
        self.assertEqual(row["knobs"], {"batch_size": "32", "time_to_accuracy": "false"})
        self.assertEqual(exported["knobs"], "batch_size=32;time_to_accuracy=false")

    def test_the_environment_can_turn_mlx_modes_off(self):
        self.assertEqual(common.mlx_mode_faults({}, "cuda", True), [])
        # MLX reads MLX_DISABLE_COMPILE by presence, whatever its value.
        self.assertEqual(len(common.mlx_mode_faults({"MLX_DISABLE_COMPILE": "0"}, "metal", True)), 1)
        self.assertEqual(common.mlx_mode_faults({"MLX_DISABLE_COMPILE": "1"}, "cuda", False), [])
        self.assertEqual(len(common.mlx_mode_faults({"MLX_USE_CUDA_GRAPHS": "0"}, "cuda", False)), 1)
        self.assertEqual(common.mlx_mode_faults({"MLX_USE_CUDA_GRAPHS": "0"}, "cpu", False), [])
        self.assertEqual(common.mlx_mode_faults({"MLX_USE_CUDA_GRAPHS": "1"}, "cuda", False), [])


def tiny_llama():
    return dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=101, rms_norm_eps=1e-5, rope_theta=10000.0,
                max_position_embeddings=64)


def llama_args(device, **extra):
    args = dict(device=device, precision="f32", seed=0, prompt_tokens=6, gen_tokens=5, warmup=1,
                repetitions=2)
    args.update(extra)
    return types.SimpleNamespace(**args)


class TinyConfig:
    """tinyllama.CONFIG at a tiny size while open."""

    def __enter__(self):
        import tinyllama
        self.module, self.saved = tinyllama, tinyllama.CONFIG
        tinyllama.CONFIG = tiny_llama()
        return tinyllama

    def __exit__(self, *exc):
        self.module.CONFIG = self.saved


def whisper_transcripts(backends, device, precision="f32"):
    """{backend: transcript} of whisper.py's run functions on the jfk clip."""
    import whisper
    audio = whisper.read_wav(os.path.join(whisper.assets(), "jfk", "jfk.wav"))
    out = {}
    for name in backends:
        args = types.SimpleNamespace(device=device, precision=precision, repetitions=2)
        t = whisper.BACKENDS[name][3](args, audio)
        for i in range(3):
            if i == 1 and t.timed_from:
                t.timed_from()
            text = t.transcribe()
        if t.check:
            t.check()
        out[name] = text
    return out


@unittest.skipUnless(HAS_TORCH, "torch is not installed (run with the references' venv)")
class TorchCpu(unittest.TestCase):
    def test_fused_projections_hold_the_same_function(self):
        import torch
        with TinyConfig() as tinyllama:
            logits = {}
            for fused in (False, True):
                torch.manual_seed(0)
                model = tinyllama.gpt_fast_model(torch, 16, torch.float32, "cpu", fused=fused)
                self.assertEqual(hasattr(model.layers[0], "w13"), fused)
                with torch.no_grad():
                    logits[fused] = model(torch.tensor([[5, 7, 9, 11]]), torch.arange(4))
        torch.testing.assert_close(logits[True], logits[False], rtol=0, atol=1e-6)

    def test_a_graph_break_fails_the_compiled_check(self):
        import torch
        common.strict_compile(torch)

        def broken(x):
            y = x * 2
            torch._dynamo.graph_break()
            return y + 1
        torch.compile(broken)(torch.ones(3))
        with self.assertRaisesRegex(common.ModeNotRun, "graph break"):
            common.check_compiled(torch, "broken")

        common.strict_compile(torch)
        torch.compile(lambda x: x * 2 + 1, fullgraph=True)(torch.ones(3))
        common.check_compiled(torch, "whole")

    def test_gpt_fast_default_mode_runs_compiled_on_the_cpu(self):
        with TinyConfig() as tinyllama:
            times, execution = tinyllama.run_gpt_fast(llama_args("cpu"), [3, 4, 5, 6, 7, 8], "default")
        self.assertEqual(len(times), 2)
        self.assertIn("Inductor settings", execution)

    def test_cuda_graph_paths_refuse_the_cpu(self):
        import torch
        with TinyConfig() as tinyllama:
            with self.assertRaisesRegex(common.ModeNotRun, "need CUDA"):
                tinyllama.run_gpt_fast(llama_args("cpu"), [3, 4, 5, 6, 7, 8], "graphs")
        count = common.CudaGraphCount(torch)
        with self.assertRaisesRegex(common.ModeNotRun, "need CUDA"):
            common.check_cuda_graphs(torch, "cpu", count, 1, "a step", compiled=False)

    @unittest.skipUnless(assets_present("minilm/model.safetensors", "spam-assassin"), "no MiniLM or SpamAssassin assets")
    def test_the_whole_step_graph_refuses_the_cpu(self):
        import bert
        args = types.SimpleNamespace(device="cpu", precision="f32", warmup=1, repetitions=2)
        cfg = dict(seq_len=16, batch_size=2, lr=5e-5, seed=0)
        with self.assertRaisesRegex(common.ModeNotRun, "need CUDA"):
            bert.run_step_graph(args, cfg)

    @unittest.skipUnless(assets_present("whisper-tiny-en-ct2/model.bin", "jfk"), "no Whisper assets")
    def test_the_static_cache_whisper_transcribes_as_transformers(self):
        for precision in ("f32", "bf16"):
            texts = whisper_transcripts(["static-decoder-eager", "hf-eager"], "cpu", precision)
            self.assertEqual(texts["static-decoder-eager"], texts["hf-eager"], precision)
            self.assertIn("ask not what your country can do for you", texts["hf-eager"])


@unittest.skipUnless(cuda_available(), "no CUDA GPU")
class TorchCuda(unittest.TestCase):
    def tearDown(self):
        # Each test as in a process of its own (the references run one
        # each): no compiled code or CUDA graph tree carried over.
        import torch
        torch._dynamo.reset()
        torch._inductor.config.triton.cudagraph_or_error = False

    def test_gpt_fast_replays_its_decode_graph(self):
        with TinyConfig() as tinyllama:
            for precision in ("bf16", "f32"):
                times, execution = tinyllama.run_gpt_fast(
                    llama_args("gpu", precision=precision), [3, 4, 5, 6, 7, 8], "graphs")
                self.assertEqual(len(times), 2)
                self.assertIn("CUDA graphs", execution)

    def test_a_step_that_mutates_a_plain_tensor_is_refused(self):
        # Inductor skips the CUDA graph of a step that mutates an input
        # that is no module buffer (the KV cache in a Python list, say).
        import torch
        common.strict_compile(torch, cuda_graphs=True)
        cache, one = torch.zeros(4, device="cuda"), torch.ones(4, device="cuda")

        def step(cache, x):
            cache.add_(x)
            return cache * 2
        compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
        # Inductor raises (strict_compile); failing that, the check must.
        with self.assertRaises(Exception) as caught, common.CudaGraphCount(torch) as count:
            for _ in range(3):
                compiled(cache, one)
            count.mark()
            compiled(cache, one)
            common.check_cuda_graphs(torch, "cuda", count, 1, "step")
        self.assertRegex(str(caught.exception), "mutated inputs|did not run as CUDA graphs")

    @unittest.skipUnless(assets_present("minilm/model.safetensors", "spam-assassin"), "no MiniLM or SpamAssassin assets")
    def test_the_whole_bert_step_is_one_replayed_graph(self):
        import bert
        cfg = dict(seq_len=128, batch_size=8, lr=5e-5, seed=0)
        for precision in ("bf16", "f32"):
            args = types.SimpleNamespace(device="gpu", precision=precision, warmup=2, repetitions=3)
            samples, execution, optimizer, _weights, _peak = bert.run_step_graph(args, cfg)
            self.assertEqual(len(samples), 3)
            self.assertIn("capturable", optimizer)
            args = types.SimpleNamespace(device="gpu", precision=precision, warmup=3, repetitions=3)
            samples, *_ = bert.run_torch(args, cfg, "graphs")
            self.assertEqual(len(samples), 3)

    @unittest.skipUnless(assets_present("whisper-tiny-en-ct2/model.bin", "jfk"), "no Whisper assets")
    def test_the_static_cache_whisper_replays_its_graphs_and_transcribes_as_transformers(self):
        for precision in ("f32", "bf16"):
            texts = whisper_transcripts(["static-decoder", "hf-eager"], "gpu", precision)
            self.assertEqual(texts["static-decoder"], texts["hf-eager"], precision)


if __name__ == "__main__":
    unittest.main()
