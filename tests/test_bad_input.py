"""The bad-input matrix (fast tier): every case exits with its code and one line naming the input and the fix, shows
no traceback, leaves every input byte for byte as it was and nothing new on disk.

Each case breaks one thing in a fresh copy of a tiny model and soft prompt; none gets as far as an export, a model
load or an engine. Cases run the `softfold` command, `optimum-cli export softfold` (in this process) or the Python
API (softfold/api.py: a softfold.UserError, one line).
"""
import errno
import hashlib
import io
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import pytest
import torch
from conftest import schema_sample
from safetensors.torch import load_file, save_file
from tiny import make_control_vector, make_lora_dir, make_model_dir, make_soft_prompt_dir

import softfold
import softfold.files
import softfold.inputs.base_model
from softfold.bundle.integrity import write_manifest
from softfold.bundle.manifest import MANIFEST_SCHEMA
from softfold.cli.main import build_parser, main
from softfold.errors import ExitCode, UserError
from softfold.parity.against import BundleThresholds

BAD, ENV = ExitCode.BAD_INPUT, ExitCode.ENVIRONMENT


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("originals")
    llama, qwen2 = make_model_dir(root / "llama", "llama"), make_model_dir(root / "qwen2", "qwen2")
    (root / "steering").mkdir()
    make_control_vector(root / "steering" / "control_vector.gguf", llama, (1,))
    return {"llama": llama, "prompt": make_soft_prompt_dir(root / "prompt", llama, 4), "qwen2": qwen2,
            "lora": make_lora_dir(root / "lora", llama, targets=["q_proj", "v_proj"]), "steering": root / "steering"}


@dataclass
class Work:
    """A case's workspace: its own copies of the inputs (the model keeps its name, which the soft prompt records);
    `cwd` is the working directory the command runs in."""
    root: Path
    model: Path
    prompt: Path
    qwen2: Path
    lora: Path
    steering: Path  # a directory holding control_vector.gguf (random, after block 1 of the 2-block llama)
    cwd: Path

    def export(self, out: str | Path, *extra: str, model: Path | None = None, prompt: Path | None = None) -> list[str]:
        return ["export", "--model", str(model or self.model), "--soft-prompt", str(prompt or self.prompt),
                "--out", str(out), "--max-context", "64", *extra]

    def export_lora(self, out: str | Path, *extra: str) -> list[str]:
        """`export --adapter` of the LoRA alone."""
        return ["export", "--model", str(self.model), "--adapter", str(self.lora), "--out", str(out),
                "--max-context", "64", *extra]

    def export_steering(self, out: str | Path, *extra: str) -> list[str]:
        """`export --steering-vector` of the control vector alone."""
        return ["export", "--model", str(self.model), "--steering-vector", str(self.control_vector), "--out", str(out),
                "--max-context", "64", *extra]

    @property
    def control_vector(self) -> Path:
        return self.steering / "control_vector.gguf"

    def write_control_vector(self, tensors: dict[str, np.ndarray], arch: str = "controlvector",
                             hint: str | None = "llama") -> None:
        writer = gguf.GGUFWriter(str(self.control_vector), arch)
        if hint is not None:
            writer.add_string(f"{arch}.model_hint", hint)
        for name, values in tensors.items():
            writer.add_tensor(name, values)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    def adapter_config(self, adapter: Path | None = None, **changes) -> None:
        path = (adapter or self.prompt) / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    def lora_tensors(self, change: Callable[[dict], dict]) -> None:
        path = self.lora / "adapter_model.safetensors"
        save_file(change(load_file(path)), path)

    def model_config(self, model: Path | None = None, **changes) -> None:
        path = (model or self.model) / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    def embeddings(self, tensor: torch.Tensor, name: str = "prompt_embeddings") -> None:
        save_file({name: tensor}, self.prompt / "adapter_model.safetensors")

    def fake_bundle(self) -> Path:
        """A directory with a manifest whose listed file was changed: damaged, found before anything loads."""
        bundle = self.root / "bundle"
        bundle.mkdir()
        (bundle / "model.pte").write_bytes(b"changed")
        (bundle / "manifest.json").write_text(json.dumps({"schema_version": 1, "files": [
            {"path": "model.pte", "size": 7, "sha256": "0" * 64}]}))
        return bundle

    def bundle(self, name: str = "bundle", context: int = 64, passed: bool = True) -> Path:
        """An intact bundle as verify sees it (a manifest of the schema, every file's checksum) with the model's
        tokenizer and chat template: its checks pass, and its model file is never loaded by a case."""
        bundle = self.root / name
        if not bundle.exists():
            bundle.mkdir()
            for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
                if (self.model / name).exists():
                    shutil.copy(self.model / name, bundle / name)
            (bundle / "model.pte").write_bytes(b"a program never loaded by the matrix")
            manifest = schema_sample(MANIFEST_SCHEMA)
            manifest.update(backend="executorch", recipe="fp32")
            manifest["model"].update(context_length=context, file="model.pte", stop_strings=["<|im_end|>"])
            manifest["parity"]["passed"] = passed
            write_manifest(bundle, manifest)
        return bundle

    def damaged(self, name: str = "bundle") -> Path:
        """`bundle(name)` with a byte of its model file flipped after export (once, however often it is asked for)."""
        bundle = self.bundle(name)
        data = bytearray((bundle / "model.pte").read_bytes())
        if data[3:4] == b"r":
            data[3] ^= 1
            (bundle / "model.pte").write_bytes(bytes(data))
        return bundle

    def linked(self, name: str = "bundle") -> Path:
        """`bundle(name)` plus a link to a file outside it, listed in the manifest with that file's checksum."""
        bundle, secret = self.bundle(name), self.root / "secret.txt"
        if (bundle / "secret").is_symlink():
            return bundle
        secret.write_text("not the bundle's\n")
        (bundle / "secret").symlink_to(secret)
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["files"].append({"path": "secret", "size": secret.stat().st_size,
                                  "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()})
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        return bundle

    def prompt_file(self, name: str, long_line: int = 0) -> Path:
        """A prompt file of three prompts; `long_line` (1-based): that one far longer than any small context."""
        lines = ["What is the capital of France?", "Tell me a story about the sea.", "How do I bake bread?"]
        if long_line:
            lines[long_line - 1] = "Tell me more about the sea and its waves. " * 60
        path = self.root / name
        if not path.exists():  # a case's setup may have written it already, as that case needs
            path.write_text("\n".join(lines) + "\n")
        return path

    def distill(self, out: str | Path, *extra: str) -> list[str]:
        """`distill` of the tiny model on tiny prompt files (none of it runs: every case stops before the model)."""
        return ["distill", "--model", str(self.model), "--out", str(out), "--harmful", str(self.prompt_file("h.txt")),
                "--benign", str(self.prompt_file("b.txt")), *extra]

    def calibrate(self, out: str | Path, *extra: str, prompt: Path | None = None) -> list[str]:
        return ["calibrate-prefix", "--model", str(self.model), "--soft-prompt", str(prompt or self.prompt), "--recipe",
                "8da4w", "--out", str(out), *extra]

    def eval(self, *extra: str) -> list[str]:
        return ["eval", "--model", str(self.model), "--harmful", str(self.prompt_file("h.txt")), "--benign",
                str(self.prompt_file("b.txt")), *extra]


def _weights(work: Work) -> Path:
    return next(work.model.glob("*.safetensors"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _remote_code_model(work: Work) -> None:
    work.model_config(model_type="mystery", auto_map={"AutoConfig": "mystery.MysteryConfig"})
    (work.model / "mystery.py").write_text("raise SystemExit('remote code ran')\n")


def _pickle_only_model(work: Work) -> None:
    _weights(work).rename(work.model / "pytorch_model.bin")


def _bigger_tokenizer(work: Work) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(work.model)
    tok.add_tokens([f"<extra_{i}>" for i in range(8)])
    tok.save_pretrained(work.model)


def _blocked_template(work: Work) -> None:
    (work.model / "chat_template.jinja").write_text("{{ messages.append(1) }}")  # the sandbox forbids mutation


def _no_template(work: Work) -> None:
    (work.model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((work.model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (work.model / "tokenizer_config.json").write_text(json.dumps(config))


def _no_space(monkeypatch) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", kwargs.get("dir"))

    monkeypatch.setattr(softfold.files.tempfile, "mkdtemp", full)


def _interrupt_loading(monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(softfold.inputs.base_model.ModelSource, "load", interrupted)


def _stdin(data: bytes) -> Callable[[pytest.MonkeyPatch], None]:
    """Standard input holding `data` (a pipe, a redirected file)."""
    return lambda monkeypatch: monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Work], list[str]]
    needle: str
    setup: Callable[[Work], object] = lambda work: None
    code: int = BAD
    fault: Callable[[pytest.MonkeyPatch], None] | None = None  # an environment fault injected into the process
    via: str = "softfold"  # or "optimum-cli": argv after `optimum-cli export softfold`
    api: Callable[[Work], object] | None = None  # a call of the Python API, in place of a command line

    def command(self, work: Work) -> str:
        """What the case exercises: a softfold command ("parity --against" apart), "optimum-cli" or "api"."""
        if self.api:
            return "api"
        if self.via == "optimum-cli":
            return "optimum-cli"
        argv = self.argv(work)
        return "parity --against" if argv[0] == "parity" and "--against" in argv else argv[0]


def Api(name: str, call: Callable[[Work], object], needle: str, setup: Callable[[Work], object] = lambda w: None):
    """A case of the Python API: the call raises softfold.UserError, one line holding `needle`. What the call opens
    (a bundle) is made by `setup`, before the workspace's snapshot."""
    return Case(name, lambda w: [], needle, setup, api=call)


def OptimumCli(name: str, argv: Callable[[Work], list[str]], needle: str,
               setup: Callable[[Work], object] = lambda w: None):
    """A case of `optimum-cli export softfold ARGV` (softfold export's flags, the output directory last)."""
    return Case(name, argv, needle, setup, via="optimum-cli")


CASES = [
    # --out: nothing the user owns is replaced
    Case("out-is-soft-prompt", lambda w: w.export(w.prompt, "--force"), "is or holds the input"),
    Case("out-is-model", lambda w: w.export(w.model, "--force"), "is or holds the input"),
    Case("out-holds-model", lambda w: w.export(w.root, "--force"), "is or holds the input"),
    Case("out-is-file", lambda w: w.export(w.root / "notes.txt", "--force"), "is a file",
         lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("out-is-cwd", lambda w: w.export(".", "--force"), "working directory"),
    Case("out-holds-cwd", lambda w: w.export("..", "--force"), "working directory"),
    Case("out-not-a-bundle", lambda w: w.export(w.root / "photos", "--force"), "not a softfold bundle",
         lambda w: ((w.root / "photos").mkdir(), (w.root / "photos" / "cat.jpg").write_bytes(b"\xff\xd8"))),
    Case("out-exists", lambda w: w.export(w.root / "old"), "already exists", lambda w: (w.root / "old").mkdir()),
    # the soft prompt
    Case("zero-virtual-tokens", lambda w: w.export(w.root / "o"), "at least one virtual token",
         lambda w: (w.embeddings(torch.zeros(0, 64)), w.adapter_config(num_virtual_tokens=0))),
    Case("other-base-model", lambda w: w.export(w.root / "o"), "was trained for 'meta-llama/Llama-3.2-1B-Instruct'",
         lambda w: w.adapter_config(base_model_name_or_path="meta-llama/Llama-3.2-1B-Instruct")),
    Case("other-layer-count", lambda w: w.export(w.root / "o"), "num_layers=30", lambda w: w.adapter_config(num_layers=30)),
    Case("prompt-weights-garbage", lambda w: w.export(w.root / "o"), "not a readable safetensors",
         lambda w: (w.prompt / "adapter_model.safetensors").write_bytes(b"\x00" * 64)),
    Case("prompt-weights-truncated", lambda w: w.export(w.root / "o"), "not a readable safetensors",
         lambda w: _truncate(w.prompt / "adapter_model.safetensors")),
    Case("prompt-config-malformed", lambda w: w.export(w.root / "o"), "is not valid JSON",
         lambda w: (w.prompt / "adapter_config.json").write_text("{\"peft_type\": ")),
    Case("prompt-config-not-object", lambda w: w.export(w.root / "o"), "expected an object",
         lambda w: (w.prompt / "adapter_config.json").write_text("[1, 2]")),
    Case("token-dim-disagrees", lambda w: w.export(w.root / "o"), "token_dim=128",
         lambda w: w.adapter_config(token_dim=128)),
    Case("prompt-config-missing", lambda w: w.export(w.root / "o"), "no adapter_config.json",
         lambda w: (w.prompt / "adapter_config.json").unlink()),
    Case("prompt-weights-missing", lambda w: w.export(w.root / "o"), "no adapter_model.safetensors",
         lambda w: (w.prompt / "adapter_model.safetensors").unlink()),
    Case("prompt-is-file", lambda w: w.export(w.root / "o", prompt=w.prompt / "adapter_config.json"),
         "soft prompt not found"),
    Case("prompt-nan", lambda w: w.export(w.root / "o"), "NaN or Inf",
         lambda w: w.embeddings(torch.full((4, 64), float("nan")))),
    Case("prompt-lora", lambda w: w.export(w.root / "o"), "expected PROMPT_TUNING", lambda w: w.adapter_config(peft_type="LORA")),
    Case("prompt-tensor-name", lambda w: w.export(w.root / "o"), "no 'prompt_embeddings'",
         lambda w: w.embeddings(torch.zeros(4, 64), name="weight")),
    Case("prompt-token-count", lambda w: w.export(w.root / "o"), "expected [num_virtual_tokens=4",
         lambda w: w.embeddings(torch.zeros(5, 64))),
    Case("prompt-hidden-size", lambda w: w.export(w.root / "o"), "hidden size 80",
         lambda w: (w.embeddings(torch.zeros(4, 80)), w.adapter_config(token_dim=80))),
    # the LoRA adapter (--adapter)
    Case("export-nothing-to-fold", lambda w: ["export", "--model", str(w.model), "--out", str(w.root / "o")],
         "export needs --soft-prompt DIR (PEFT prompt tuning), --adapter DIR (PEFT LoRA), --steering-vector FILE "
         "(llama.cpp control vector), or several of them (--base-only: the model alone, with no safety added)"),
    Case("export-base-only-with-a-prompt", lambda w: w.export(w.root / "o", "--base-only"),
         "--base-only exports the model with nothing added: drop --soft-prompt, or --base-only"),
    Case("adapter-missing", lambda w: w.export(w.root / "o", "--adapter", str(w.root / "nope")),
         "not found: pass a PEFT LoRA adapter directory"),
    Case("adapter-config-missing", lambda w: w.export_lora(w.root / "o"), "has no adapter_config.json",
         lambda w: (w.lora / "adapter_config.json").unlink()),
    Case("adapter-pickle-only", lambda w: w.export_lora(w.root / "o"), "never unpickles",
         lambda w: (w.lora / "adapter_model.safetensors").rename(w.lora / "adapter_model.bin")),
    Case("adapter-is-a-soft-prompt", lambda w: w.export(w.root / "o", "--adapter", str(w.prompt)),
         "is a PROMPT_TUNING adapter, expected LORA (a prompt-tuning soft prompt goes to --soft-prompt)"),
    Case("adapter-layer-replication", lambda w: w.export_lora(w.root / "o"), "layer_replication",
         lambda w: w.adapter_config(w.lora, layer_replication=[[0, 2], [1, 2]])),
    Case("adapter-no-lora-tensors", lambda w: w.export_lora(w.root / "o"), "holds no LoRA tensors",
         lambda w: w.lora_tensors(lambda t: {k.replace("lora_", "dora_"): v for k, v in t.items()})),
    Case("adapter-unknown-module", lambda w: w.export_lora(w.root / "o"),
         "adapts model.layers.7.self_attn.q_proj, which this llama model does not have",
         lambda w: w.lora_tensors(lambda t: {k.replace("layers.1.", "layers.7."): v for k, v in t.items()})),
    Case("adapter-other-shape", lambda w: w.export_lora(w.root / "o"), "trained for a base model of another shape",
         lambda w: w.lora_tensors(lambda t: {k: torch.zeros(4, 80) if "lora_A" in k else v for k, v in t.items()})),
    Case("adapter-other-base-model", lambda w: w.export_lora(w.root / "o"),
         "was trained for 'meta-llama/Llama-3.2-1B-Instruct', not",
         lambda w: w.adapter_config(w.lora, base_model_name_or_path="meta-llama/Llama-3.2-1B-Instruct")),
    Case("adapter-nan", lambda w: w.export_lora(w.root / "o"), "NaN or Inf",
         lambda w: w.lora_tensors(lambda t: {k: torch.full_like(v, float("nan")) for k, v in t.items()})),
    Case("adapter-virtual-tokens", lambda w: w.export_lora(w.root / "o", "--folding", "virtual-tokens"),
         "--folding virtual-tokens folds a soft prompt"),
    Case("adapter-with-prefix-kv", lambda w: w.export(w.root / "o", "--adapter", str(w.lora), "--prefix-kv",
                                                      str(w.root / "kv.safetensors")), "--prefix-kv replaces"),
    # the steering vectors (--steering-vector)
    Case("steering-missing", lambda w: w.export(w.root / "o", "--steering-vector", str(w.root / "nope.gguf")),
         "not found: pass a llama.cpp control-vector GGUF"),
    Case("steering-is-a-directory", lambda w: w.export(w.root / "o", "--steering-vector", str(w.steering)),
         "is a directory: pass the control-vector file in it"),
    Case("steering-not-gguf", lambda w: w.export_steering(w.root / "o"), "is not a GGUF file (no GGUF magic)",
         lambda w: w.control_vector.write_text("direction.1 = 0.5\n")),
    Case("steering-truncated", lambda w: w.export_steering(w.root / "o"), "is not a readable GGUF file",
         lambda w: w.control_vector.write_bytes(w.control_vector.read_bytes()[:100])),
    Case("steering-is-a-model-gguf", lambda w: w.export_steering(w.root / "o"), "not a llama.cpp control vector",
         lambda w: w.write_control_vector({"token_embd.weight": np.zeros((8, 64), np.float32)}, arch="llama")),
    Case("steering-other-architecture", lambda w: w.export_steering(w.root / "o"),
         "was made for a qwen2 model (controlvector.model_hint), this model is llama",
         lambda w: w.write_control_vector({"direction.1": np.zeros(64, np.float32)}, hint="qwen2")),
    Case("steering-layer-0", lambda w: w.export_steering(w.root / "o"),
         "direction.0: layer 0 is out of range: this model's 2 blocks take steering vectors after blocks 1 to 1",
         lambda w: w.write_control_vector({"direction.0": np.zeros(64, np.float32)})),
    Case("steering-layer-out-of-range", lambda w: w.export_steering(w.root / "o"), "layer 5 is out of range",
         lambda w: w.write_control_vector({"direction.5": np.zeros(64, np.float32)})),
    Case("steering-other-width", lambda w: w.export_steering(w.root / "o"),
         "direction.1 has 80 values, this model's hidden size is 64",
         lambda w: w.write_control_vector({"direction.1": np.zeros(80, np.float32)})),
    Case("steering-nan", lambda w: w.export_steering(w.root / "o"), "direction.1 holds NaN or Inf",
         lambda w: w.write_control_vector({"direction.1": np.full(64, np.nan, np.float32)})),
    Case("steering-f16", lambda w: w.export_steering(w.root / "o"), "llama.cpp reads F32 vectors only",
         lambda w: w.write_control_vector({"direction.1": np.zeros(64, np.float16)})),
    Case("steering-other-tensor", lambda w: w.export_steering(w.root / "o"), "holds only direction.<layer> tensors",
         lambda w: w.write_control_vector({"direction.1": np.zeros(64, np.float32), "scale": np.ones(1, np.float32)})),
    Case("steering-empty", lambda w: w.export_steering(w.root / "o"), "holds no direction.<layer> tensors",
         lambda w: w.write_control_vector({})),
    Case("steering-with-prefix-kv", lambda w: w.export(w.root / "o", "--steering-vector", str(w.control_vector),
                                                       "--prefix-kv", str(w.root / "kv.safetensors")),
         "--prefix-kv replaces"),
    Case("steering-virtual-tokens", lambda w: w.export_steering(w.root / "o", "--folding", "virtual-tokens"),
         "--folding virtual-tokens folds a soft prompt"),
    # the model
    Case("model-missing", lambda w: w.export(w.root / "o", model=w.root / "nope"), "model not found"),
    Case("model-config-malformed", lambda w: w.export(w.root / "o"), "is not valid JSON",
         lambda w: (w.model / "config.json").write_text("{")),
    Case("model-config-not-object", lambda w: w.export(w.root / "o"), "expected an object",
         lambda w: (w.model / "config.json").write_text("\"llama\"")),
    Case("model-config-missing", lambda w: w.export(w.root / "o"), "has no config.json",
         lambda w: (w.model / "config.json").unlink()),
    Case("model-weights-truncated", lambda w: w.export(w.root / "o"), "not a readable safetensors",
         lambda w: _truncate(_weights(w))),
    Case("model-weights-garbage", lambda w: w.export(w.root / "o"), "not a readable safetensors",
         lambda w: _weights(w).write_bytes(b"not weights at all" * 8)),
    Case("model-pickle-only", lambda w: w.export(w.root / "o"), "never unpickles", _pickle_only_model),
    Case("tokenizer-missing", lambda w: w.export(w.root / "o"), "has no tokenizer",
         lambda w: (w.model / "tokenizer.json").unlink()),
    Case("fake-gguf", lambda w: w.export(w.root / "o", model=w.root / "model.gguf"), "not a GGUF file",
         lambda w: (w.root / "model.gguf").write_text("<html>404</html>")),
    Case("remote-code-architecture", lambda w: w.export(w.root / "o"), "'mystery' is not supported", _remote_code_model),
    Case("unsupported-architecture", lambda w: w.export(w.root / "o"), "'gpt2' is not supported",
         lambda w: w.model_config(model_type="gpt2")),
    Case("vocab-mismatch", lambda w: w.export(w.root / "o"), "its tokenizer has", _bigger_tokenizer),
    Case("weights-disagree-with-config", lambda w: w.export(w.root / "o"), "weights do not load",
         lambda w: w.model_config(intermediate_size=96)),
    Case("chat-template-blocked", lambda w: w.export(w.root / "o"), "chat template does not render", _blocked_template),
    Case("no-chat-template", lambda w: w.export(w.root / "o"), "has no chat template: pass --chat-template FILE",
         _no_template),
    Case("chat-template-missing", lambda w: w.export(w.root / "o", "--chat-template", str(w.root / "turns.jinja")),
         "--chat-template", _no_template),
    Case("chat-template-empty", lambda w: w.export(w.root / "o", "--chat-template", str(w.root / "turns.jinja")),
         "is empty", lambda w: (w.root / "turns.jinja").write_text("\n")),
    Case("chat-template-flag-blocked", lambda w: w.export(w.root / "o", "--chat-template", str(w.root / "t.jinja")),
         "chat template does not render", lambda w: (w.root / "t.jinja").write_text("{{ messages.append(1) }}")),
    Case("sliding-window", lambda w: w.export(w.root / "o", model=w.qwen2, prompt=w.root / "qp"), "sliding window",
         lambda w: (w.model_config(w.qwen2, use_sliding_window=True, sliding_window=32, max_window_layers=0),
                    shutil.copytree(w.prompt, w.root / "qp"),
                    (w.root / "qp" / "adapter_config.json").write_text(json.dumps(
                        {**json.loads((w.prompt / "adapter_config.json").read_text()),
                         "base_model_name_or_path": str(w.qwen2)})))),
    Case("phi3-longrope", lambda w: w.export(w.root / "o"), "phi3 RoPE scaling 'longrope' is not supported",
         lambda w: w.model_config(model_type="phi3", original_max_position_embeddings=2048, rope_scaling={
             "type": "su", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8, "original_max_position_embeddings": 2048})),
    Case("partial-rotary", lambda w: w.export(w.root / "o"), "partial_rotary_factor=0.5",
         lambda w: w.model_config(rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                   "partial_rotary_factor": 0.5})),
    Case("erf-gelu-mlp", lambda w: w.export(w.root / "o"), "hidden_act 'gelu' is not supported",
         lambda w: w.model_config(hidden_act="gelu")),
    Case("mlp-bias", lambda w: w.export(w.root / "o"), "mlp_bias / attention_bias is not supported",
         lambda w: w.model_config(mlp_bias=True)),
    Case("logit-softcapping", lambda w: w.export(w.root / "o"), "final_logit_softcapping=30.0 is not supported",
         lambda w: w.model_config(final_logit_softcapping=30.0)),
    # flags
    Case("context-beyond-positions", lambda w: w.export(w.root / "o", "--max-context", "5000"), "exceed the model's 4096"),
    Case("context-too-small", lambda w: w.export(w.root / "o", "--max-context", "4"), "at least 8 tokens"),
    Case("context-zero", lambda w: w.export(w.root / "o", "--max-context", "0"), "must be a positive integer"),
    Case("keep-8bit-unknown-layer", lambda w: w.export(w.root / "o", "--recipe", "8da4w", "--keep-8bit", "layers.9"),
         "--keep-8bit layers.9: no such layer"),
    Case("keep-8bit-on-fp32", lambda w: w.export(w.root / "o", "--keep-8bit", "lm_head"), "applies to the 4-bit recipes"),
    Case("embedding-bits-on-fp32", lambda w: w.export(w.root / "o", "--embedding-bits", "8"), "--recipe fp32 keeps"),
    Case("recipe-not-for-target", lambda w: w.export(w.root / "o", "--recipe", "int4"), "not available for --target"),
    Case("unknown-recipe", lambda w: w.export(w.root / "o", "--recipe", "int3"), "invalid choice: 'int3'"),
    Case("junit-missing-dir", lambda w: w.export(w.root / "o", "--junit", str(w.root / "ci" / "gate.xml")),
         "does not exist"),
    Case("prompts-missing", lambda w: w.export(w.root / "o", "--prompts", str(w.root / "p.txt")), "prompt file not found"),
    Case("prompts-not-utf8", lambda w: w.export(w.root / "o", "--prompts", str(w.root / "p.txt")), "is not UTF-8",
         lambda w: (w.root / "p.txt").write_bytes(b"caf\xe9\n")),
    Case("prefix-kv-with-virtual-tokens", lambda w: w.export(w.root / "o", "--folding", "virtual-tokens", "--prefix-kv",
                                                           str(w.root / "kv.safetensors")), "needs --folding prefix-kv"),
    # the environment
    Case("disk-full", lambda w: w.export(w.root / "o"), "free disk space", code=ENV, fault=_no_space),
    Case("interrupted", lambda w: w.export(w.root / "o"), "interrupted", code=ENV, fault=_interrupt_loading),
    # the other commands
    Case("run-damaged-bundle", lambda w: ["run", str(w.fake_bundle()), "hi"], "damaged"),
    Case("run-not-a-bundle", lambda w: ["run", str(w.prompt), "hi"], "not a softfold bundle"),
    Case("run-no-new-tokens", lambda w: ["run", str(w.prompt), "hi", "--max-new-tokens", "0"], "positive integer"),
    Case("run-not-utf8", lambda w: ["run", str(w.prompt), "caf\udce9"], "not valid UTF-8"),
    Case("verify-not-a-bundle", lambda w: ["verify", str(w.model)], "not a softfold bundle"),
    Case("parity-damaged-bundle", lambda w: ["parity", str(w.fake_bundle()), "--soft-prompt", str(w.prompt)], "damaged"),
    Case("distill-zero-steps", lambda w: ["distill", "--out", str(w.root / "d"), "--steps", "0"],
         "--steps 0 trains nothing"),
    Case("distill-zero-steps-trained-steering", lambda w: ["distill", "--out", str(w.root / "d"), "--method",
                                                           "steering", "--steps", "0"], "--steps 0 trains nothing"),
    Case("distill-unknown-method", lambda w: ["distill", "--out", str(w.root / "d"), "--method", "ia3"],
         "invalid choice: 'ia3'"),
    Case("distill-steering-layer-out-of-range", lambda w: ["distill", "--model", str(w.model), "--out",
                                                           str(w.root / "d"), "--method", "steering",
                                                           "--steering-layers", "1", "2"],
         "--steering-layers: layer 2 is out of range: this model's 2 blocks take steering vectors after blocks 1 to 1"),
    Case("distill-steering-scale-untrained-zero", lambda w: ["distill", "--out", str(w.root / "d"), "--method",
                                                             "steering", "--steering-scale", "4"],
         "--steering-scale scales the mean-difference vectors"),
    Case("distill-steering-flag-of-other-method", lambda w: ["distill", "--out", str(w.root / "d"),
                                                             "--steering-layers", "1"],
         "--method prompt takes no --steering-layers (--method steering does)"),
    Case("distill-flag-of-other-method", lambda w: ["distill", "--out", str(w.root / "d"), "--lora-rank", "4"],
         "--method prompt takes no --lora-rank (--method lora does)"),
    Case("distill-lora-unknown-module", lambda w: ["distill", "--model", str(w.model), "--out", str(w.root / "d"),
                                                   "--method", "lora", "--lora-target-modules", "qkv_proj"],
         "--lora-target-modules qkv_proj: no such Linear in this model"),
    Case("eval-bundle-without-student", lambda w: ["eval", "--model", str(w.model), "--bundle", str(w.fake_bundle())],
         "--bundle compares with the fp32 student"),
    Case("eval-adapter-is-a-soft-prompt", lambda w: ["eval", "--model", str(w.model), "--adapter", str(w.prompt)],
         "is a PROMPT_TUNING adapter, expected LORA"),
    Case("eval-steering-other-model", lambda w: ["eval", "--model", str(w.qwen2), "--steering-vector",
                                                 str(w.control_vector)], "was made for a llama model"),
    Case("unknown-flag", lambda w: ["export", "--soft-prompt", "x", "--out", "y", "--colour"], "unrecognized arguments"),
    Case("export-steering-vector-twice", lambda w: w.export_steering(w.root / "o", "--steering-vector",
                                                                     str(w.root / "other.gguf")),
         "argument --steering-vector: given twice"),
    Case("export-lora-targets-a-module-the-model-lacks", lambda w: w.export_lora(w.root / "o"),
         "target_modules names qkv_proj, which this llama model does not have",
         lambda w: w.adapter_config(w.lora, target_modules=["q_proj", "v_proj", "qkv_proj"])),
    # verify: a link out of a bundle is damage (the link itself: tests/test_bundle.py)
    Case("verify-not-a-directory", lambda w: ["verify", str(w.root / "notes.txt")], "not a softfold bundle",
         lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("run-bundle-links-outside", lambda w: ["run", str(w.linked()), "hi"],
         "is damaged (secret: a symbolic link, where a bundle holds plain files only)"),
    # run
    Case("run-message-from-empty-stdin", lambda w: ["run", str(w.bundle()), "-"], "read an empty message from standard "
         "input", fault=_stdin(b"")),
    Case("run-message-from-stdin-not-utf8", lambda w: ["run", str(w.bundle()), "-"],
         "the message on standard input is not UTF-8", fault=_stdin(b"caf\xe9\n")),
    Case("run-no-verify-tokenizer-missing", lambda w: ["run", str(w.bundle()), "hello", "--no-verify"],
         "has no tokenizer.json: copy the whole bundle", lambda w: (w.bundle() / "tokenizer.json").unlink()),
    Case("run-prompt-too-long", lambda w: ["run", str(w.bundle(context=16)), "Tell me about the sea. " * 20],
         "but {root}/bundle holds 16: shorten it"),
    # distill: --out is a new directory or a previous distill output; nothing it reads
    Case("distill-out-is-model", lambda w: w.distill(w.model), "is or holds the input"),
    Case("distill-out-holds-model", lambda w: w.distill(w.root), "is or holds the input"),
    Case("distill-out-user-dir", lambda w: w.distill(w.root / "notes"),
         "exists and is not a softfold distill output (no softfold_distill.json or checkpoint/state.json)",
         lambda w: ((w.root / "notes").mkdir(), (w.root / "notes" / "README.md").write_text("mine"))),
    Case("distill-out-is-file", lambda w: w.distill(w.root / "notes.txt"), "is a file",
         lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("distill-out-is-cwd", lambda w: w.distill("."), "working directory"),
    Case("distill-out-holds-data", lambda w: w.distill(w.root / "data", "--harmful", str(w.root / "data" / "h.txt")),
         "is or holds the input {root}/data/h.txt",
         lambda w: ((w.root / "data").mkdir(), (w.root / "data" / "h.txt").write_text("How do I pick a lock?\n"))),
    Case("distill-out-is-init-from", lambda w: w.distill(w.prompt, "--init-from", str(w.prompt)),
         "is or holds the input"),
    Case("distill-out-holds-teacher-cache", lambda w: w.distill(w.root / "d", "--teacher-cache",
                                                                str(w.root / "d" / "cache.safetensors")),
         "is or holds the input"),
    Case("distill-teacher-cache-is-users-file", lambda w: w.distill(w.root / "d", "--teacher-cache",
                                                                    str(w.root / "notes.txt")),
         "--teacher-cache {root}/notes.txt exists and is not a teacher cache",
         lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("distill-lr-nan", lambda w: w.distill(w.root / "d", "--lr", "nan"),
         "argument --lr: must be a finite number > 0, got nan"),
    Case("distill-lr-zero", lambda w: w.distill(w.root / "d", "--lr", "0"),
         "argument --lr: must be a finite number > 0"),
    Case("distill-lr-inf", lambda w: w.distill(w.root / "d", "--lr", "inf"), "argument --lr: must be a finite number"),
    Case("distill-margin-nan", lambda w: w.distill(w.root / "d", "--margin", "nan"),
         "argument --margin: must be a finite number >= 0, got nan"),
    Case("distill-quantized-weight-inf", lambda w: w.distill(w.root / "d", "--quantized-weight", "inf"),
         "argument --quantized-weight: must be a finite number > 0"),
    Case("distill-steering-scale-nan", lambda w: w.distill(w.root / "d", "--method", "steering", "--steering-scale",
                                                           "nan"),
         "argument --steering-scale: must be a finite number"),
    Case("distill-harmful-missing", lambda w: w.distill(w.root / "d", "--harmful", str(w.root / "nope.txt")),
         "prompt file not found"),
    # eval
    Case("eval-no-base-and-nothing-else", lambda w: w.eval("--no-base"), "eval --no-base leaves nothing to evaluate"),
    Case("eval-bundle-damaged", lambda w: w.eval("--soft-prompt", str(w.prompt), "--bundle", str(w.damaged())),
         "is damaged (model.pte: checksum differs from the manifest"),
    Case("eval-bundle-links-outside", lambda w: w.eval("--soft-prompt", str(w.prompt), "--bundle", str(w.linked())),
         "is damaged (secret: a symbolic link"),
    Case("eval-prompt-too-long-for-bundle", lambda w: w.eval("--soft-prompt", str(w.prompt), "--bundle",
                                                            str(w.bundle())),
         "{root}/h.txt:2: the prompt takes", lambda w: w.prompt_file("h.txt", long_line=2)),
    Case("eval-limit-zero", lambda w: w.eval("--limit", "0"), "argument --limit: must be a positive integer"),
    Case("eval-soft-prompt-missing", lambda w: w.eval("--soft-prompt", str(w.root / "nope")), "soft prompt not found"),
    Case("eval-json-dir-missing", lambda w: w.eval("--json", str(w.root / "out" / "eval.json")), "does not exist"),
    Case("eval-harmful-not-utf8", lambda w: w.eval("--harmful", str(w.root / "latin1.txt")), "is not UTF-8",
         lambda w: (w.root / "latin1.txt").write_bytes(b"caf\xe9\n")),
    Case("eval-steering-vector-twice", lambda w: w.eval("--steering-vector", str(w.control_vector),
                                                       "--steering-vector", str(w.control_vector)),
         "argument --steering-vector: given twice"),
    # parity --against: both bundles verified, thresholds finite, prompts fit, reports beside
    Case("parity-max-kl-nan", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle()), "--max-kl", "nan"],
         "argument --max-kl: must be a finite number >= 0, got nan"),
    Case("parity-max-kl-inf", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle()), "--max-kl", "inf"],
         "argument --max-kl: must be a finite number >= 0, got inf"),
    Case("parity-min-agreement-nan", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle()),
                                                "--min-agreement", "nan"],
         "argument --min-agreement: must be a finite number in [0, 1], got nan"),
    Case("parity-min-agreement-above-1", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle()),
                                                    "--min-agreement", "1.5"], "must be a finite number in [0, 1]"),
    Case("parity-against-damaged-released", lambda w: ["parity", str(w.bundle("new")), "--against", str(w.damaged())],
         "{root}/bundle is damaged (model.pte: checksum differs"),
    Case("parity-against-damaged-new", lambda w: ["parity", str(w.damaged()), "--against", str(w.bundle("old"))],
         "{root}/bundle is damaged (model.pte: checksum differs"),
    Case("parity-against-not-a-bundle", lambda w: ["parity", str(w.bundle()), "--against", str(w.prompt)],
         "is not a softfold bundle"),
    Case("parity-against-prompt-too-long", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle("old")),
                                                      "--prompts", str(w.prompt_file("p.txt", long_line=3))],
         "{root}/p.txt:3: the prompt takes"),
    Case("parity-prompt-too-long", lambda w: ["parity", str(w.bundle()), "--soft-prompt", str(w.prompt),
                                              "--prompts", str(w.prompt_file("p.txt", long_line=2))],
         "{root}/p.txt:2: the prompt takes"),
    Case("parity-report-is-the-bundle", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle("old")),
                                                   "--report", str(w.bundle())], "is or holds the input"),
    Case("parity-report-user-dir", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle("old")),
                                              "--report", str(w.root / "notes")],
         "exists and is not a parity report directory",
         lambda w: ((w.root / "notes").mkdir(), (w.root / "notes" / "README.md").write_text("mine"))),
    Case("parity-against-zero-new-tokens", lambda w: ["parity", str(w.bundle()), "--against", str(w.bundle("old")),
                                                      "--max-new-tokens", "0"], "must be a positive integer"),
    # calibrate-prefix: --out is a new file or a previous prefix file; the soft prompt checked before the model loads
    Case("calibrate-prefix-out-is-an-input", lambda w: w.calibrate(w.prompt / "adapter_model.safetensors"),
         "is or lies inside the input"),
    Case("calibrate-prefix-out-is-users-file", lambda w: w.calibrate(w.root / "notes.txt"),
         "exists and is not a prefix K/V file", lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("calibrate-prefix-out-is-dir", lambda w: w.calibrate(w.root), "is a directory"),
    Case("calibrate-prefix-soft-prompt-missing", lambda w: w.calibrate(w.root / "kv.safetensors",
                                                                       prompt=w.root / "nope"),
         "soft prompt not found"),
    Case("calibrate-prefix-negative-opening-prompts", lambda w: w.calibrate(w.root / "kv.safetensors",
                                                                            "--opening-prompts-per-file", "-1"),
         "must be 0 or a positive integer"),
    Case("calibrate-prefix-fp32", lambda w: ["calibrate-prefix", "--model", str(w.model), "--soft-prompt",
                                             str(w.prompt), "--out", str(w.root / "kv.safetensors")],
         "prefix calibration simulates weight-quantized recipes"),
    # sensitivity
    Case("sensitivity-soft-prompt-missing", lambda w: ["sensitivity", "--model", str(w.model), "--soft-prompt",
                                                       str(w.root / "nope")], "soft prompt not found"),
    Case("sensitivity-soft-prompt-of-another-width", lambda w: ["sensitivity", "--model", str(w.model),
                                                                "--soft-prompt", str(w.prompt)], "hidden size 80",
         lambda w: (w.embeddings(torch.zeros(4, 80)), w.adapter_config(token_dim=80))),
    Case("sensitivity-json-dir-missing", lambda w: ["sensitivity", "--model", str(w.model), "--soft-prompt",
                                                    str(w.prompt), "--json", str(w.root / "out" / "s.json")],
         "does not exist"),
    Case("sensitivity-group-size", lambda w: ["sensitivity", "--soft-prompt", str(w.prompt), "--group-size", "7"],
         "invalid choice: 7"),
    # bench: --work is a new directory or a previous bench's; the inputs checked before its exports start
    Case("bench-work-is-a-file", lambda w: ["bench", "--model", str(w.model), "--soft-prompt", str(w.prompt), "--work",
                                            str(w.root / "notes.txt")], "--work {root}/notes.txt is a file",
         lambda w: (w.root / "notes.txt").write_text("mine")),
    Case("bench-work-holds-the-model", lambda w: ["bench", "--model", str(w.model), "--soft-prompt", str(w.prompt),
                                                  "--work", str(w.root)], "is or holds the input"),
    Case("bench-work-users-dir", lambda w: ["bench", "--model", str(w.model), "--soft-prompt", str(w.prompt), "--work",
                                            str(w.root / "photos")],
         "exists and is not a softfold bench work directory",
         lambda w: ((w.root / "photos").mkdir(), (w.root / "photos" / "cat.jpg").write_bytes(b"\xff\xd8"))),
    Case("bench-soft-prompt-missing", lambda w: ["bench", "--model", str(w.model), "--soft-prompt",
                                                 str(w.root / "nope"), "--work", str(w.root / "b")],
         "soft prompt not found"),
    Case("bench-adapter-is-a-soft-prompt", lambda w: ["bench", "--model", str(w.model), "--soft-prompt", str(w.prompt),
                                                      "--adapter", str(w.prompt), "--work", str(w.root / "b")],
         "is a PROMPT_TUNING adapter, expected LORA"),
    Case("bench-zero-rounds", lambda w: ["bench", "--soft-prompt", str(w.prompt), "--work", str(w.root / "b"),
                                         "--rounds", "0"], "must be a positive integer"),
    # demo
    Case("demo-unknown-model", lambda w: ["demo", "--model", "gpt5"], "softfold ships a soft prompt for smollm2-135m, gemma3-270m only"),
    # optimum-cli export softfold: softfold export's checks and one-line errors
    OptimumCli("optimum-cli-out-is-soft-prompt", lambda w: ["--model", str(w.model), "--soft-prompt", str(w.prompt),
                                                            "--force", str(w.prompt)], "is or holds the input"),
    OptimumCli("optimum-cli-soft-prompt-missing", lambda w: ["--model", str(w.model), "--soft-prompt",
                                                             str(w.root / "nope"), str(w.root / "o")],
               "soft prompt not found"),
    OptimumCli("optimum-cli-out-exists", lambda w: ["--model", str(w.model), "--soft-prompt", str(w.prompt),
                                                    str(w.root / "old")], "already exists: pass --force",
               lambda w: (w.root / "old").mkdir()),
    OptimumCli("optimum-cli-steering-vector-twice", lambda w: ["--model", str(w.model), "--steering-vector",
                                                               str(w.control_vector), "--steering-vector",
                                                               str(w.control_vector), str(w.root / "o")],
               "argument --steering-vector: given twice"),
    # the Python API: softfold.UserError naming the argument, what it takes and what it got
    Api("api-fold-max-context-not-an-int", lambda w: softfold.fold(w.prompt, w.root / "o", model=w.model,
                                                                   max_context="big"),
        "fold(): max_context takes an integer, got str 'big'"),
    Api("api-fold-out-not-a-path", lambda w: softfold.fold(w.prompt, 123, model=w.model),
        "fold(): out takes a path (str or Path), got int 123"),
    Api("api-fold-keep-8bit-a-string", lambda w: softfold.fold(w.prompt, w.root / "o", model=w.model, recipe="8da4w",
                                                               keep_8bit="lm_head"),
        "fold(): keep_8bit takes a list of strings, got str 'lm_head'"),
    Api("api-fold-force-not-a-bool", lambda w: softfold.fold(w.prompt, w.root / "o", model=w.model, force="yes"),
        "fold(): force takes True or False, got str 'yes'"),
    Api("api-fold-out-is-the-model", lambda w: softfold.fold(w.prompt, w.model, model=w.model, force=True),
        "is or holds the input"),
    Api("api-bundle-path-not-a-path", lambda w: softfold.Bundle(42), "Bundle(): path takes a path (str or Path)"),
    Api("api-generate-prompt-not-text", lambda w: softfold.Bundle(w.bundle()).generate(["hi"]),
        "generate(): prompt takes a string, got list", lambda w: w.bundle()),
    Api("api-generate-damaged", lambda w: softfold.Bundle(w.damaged()).generate("hi"),
        "is damaged (model.pte: checksum differs", lambda w: w.damaged()),
    Api("api-compare-damaged-released", lambda w: softfold.Bundle(w.bundle("new")).compare(w.damaged()),
        "is damaged (model.pte: checksum differs", lambda w: (w.bundle("new"), w.damaged())),
    Api("api-compare-max-kl-nan", lambda w: softfold.Bundle(w.bundle()).compare(
        w.bundle("old"), thresholds=BundleThresholds(max_mean_kl=math.nan)), "--max-kl must be a finite number",
        lambda w: (w.bundle(), w.bundle("old"))),
    Api("api-compare-new-tokens-not-an-int", lambda w: softfold.Bundle(w.bundle()).compare(w.bundle("old"),
                                                                                          max_new_tokens="32"),
        "compare(): max_new_tokens takes an integer, got str '32'", lambda w: (w.bundle(), w.bundle("old"))),
    Api("api-parity-links-outside", lambda w: softfold.Bundle(w.linked()).parity(w.prompt, model=w.model),
        "is damaged (secret: a symbolic link", lambda w: w.linked()),
]


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, originals, tmp_path, monkeypatch, capsys):
    work = workspace(originals, tmp_path)
    case.setup(work)
    argv = case.argv(work)
    before = snapshot(tmp_path)
    monkeypatch.chdir(work.cwd)
    if case.fault:
        case.fault(monkeypatch)
    assert run_case(case, work, argv, monkeypatch, capsys) == case.code
    # as a terminal shows it: progress bars redraw after "\r" and are erased when they close
    err = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    err = [line for line in err if line.strip()]
    needle = case.needle.replace("{root}", str(work.root))
    assert len(err) == 1 and needle in err[0] and err[0].startswith("softfold"), err
    assert snapshot(tmp_path) == before  # inputs untouched, nothing written, nothing left behind


def workspace(originals: dict[str, Path], tmp_path: Path) -> Work:
    root = tmp_path / "work"
    inputs = ("llama", "prompt", "qwen2", "lora", "steering")
    work = Work(root, *(shutil.copytree(originals[k], root / k, symlinks=True) for k in inputs), tmp_path / "cwd")
    work.cwd.mkdir()
    return work


def run_case(case: Case, work: Work, argv: list[str], monkeypatch, capsys) -> int:
    """The case's exit code; an API case's UserError printed as the CLI prints it (it must be one line)."""
    if case.api:
        with pytest.raises(UserError) as raised:
            case.api(work)
        assert capsys.readouterr().err == "" and "\n" not in str(raised.value)
        print(f"softfold: error: {raised.value}", file=sys.stderr)
        return BAD
    if case.via == "optimum-cli":
        return optimum_cli(argv, monkeypatch)
    return main(argv)


def optimum_cli(argv: list[str], monkeypatch) -> int:
    """`optimum-cli export softfold ARGV` in this process: optimum's own parser, softfold's registered command."""
    from optimum.commands.optimum_cli import main as optimum_main

    monkeypatch.setattr(sys, "argv", ["optimum-cli", "export", "softfold", *argv])
    try:
        optimum_main()
    except SystemExit as e:
        return e.code
    return ExitCode.OK


# the commands added since the matrix was first written: each needs real bad-input cases of its own
SWEPT = ("distill", "eval", "parity --against", "calibrate-prefix", "sensitivity", "bench", "api", "optimum-cli")


def test_the_matrix_covers_every_command_and_exit_code(tmp_path):
    """Every subcommand of the parser, optimum-cli and the Python API have a case, the commands added since the
    matrix was written several; every exit code of bad input and of the environment has a case."""
    counts: dict[str, int] = {}
    for i, case in enumerate(CASES):
        root = tmp_path / str(i)  # argv may make files (a prompt file, a bundle): each case its own
        work = Work(root, *(root / name for name in ("m", "p", "q", "l", "s", "cwd")))
        work.model.mkdir(parents=True)
        command = case.command(work)
        counts[command] = counts.get(command, 0) + 1
    subcommands = set(next(a for a in build_parser()._actions if a.dest == "command").choices)
    assert subcommands - counts.keys() == set() and {"api", "optimum-cli", "parity --against"} <= counts.keys()
    assert {command: counts[command] for command in SWEPT if counts[command] < 3} == {}
    assert {ExitCode.BAD_INPUT, ExitCode.ENVIRONMENT} <= {case.code for case in CASES}
    assert len({case.name for case in CASES}) == len(CASES)


def test_every_command_that_opens_a_bundle_says_it_failed_its_gate(originals, tmp_path, capsys):
    """run, eval --bundle, parity and parity --against (either side) and the API verify a bundle first, then say in
    one line when it failed its gate at export; here each goes on to refuse a prompt too long for it."""
    work = workspace(originals, tmp_path)
    failed, ok, long = work.bundle("failed", passed=False), work.bundle("ok"), work.prompt_file("p.txt", long_line=1)
    work.prompt_file("h.txt", long_line=1)
    commands = [["run", str(failed), "Tell me about the sea. " * 40],
                work.eval("--soft-prompt", str(work.prompt), "--bundle", str(failed)),
                ["parity", str(failed), "--soft-prompt", str(work.prompt), "--prompts", str(long)],
                ["parity", str(failed), "--against", str(ok), "--prompts", str(long)],
                ["parity", str(ok), "--against", str(failed), "--prompts", str(long)]]
    warning = f"WARNING: {failed} FAILED its parity gate at export ({failed}/parity.md)"
    for argv in commands:
        assert main(argv) == BAD
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and err[0].startswith(warning) and "the prompt takes" in err[1], (argv, err)
    with pytest.raises(UserError, match="the prompt takes"):
        softfold.Bundle(failed).generate("Tell me about the sea. " * 40)
    assert capsys.readouterr().err.startswith(warning)


def test_debug_shows_the_traceback(originals, tmp_path, capsys):
    assert main(["verify", str(tmp_path), "--debug"]) == BAD
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("softfold: error:")
