"""The bad-input matrix (fast tier): every case exits with its code and one line naming the input and the fix, shows
no traceback, leaves every input byte for byte as it was and nothing new on disk.

Each case breaks one thing in a fresh copy of a tiny model and soft prompt; none gets as far as an export.
"""
import errno
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny import make_control_vector, make_lora_dir, make_model_dir, make_soft_prompt_dir

import softfold.bundle
import softfold.pipeline
from softfold.cli import main
from softfold.errors import ExitCode

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

    monkeypatch.setattr(softfold.bundle.tempfile, "mkdtemp", full)


def _interrupt_loading(monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(softfold.pipeline, "load_base", interrupted)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Work], list[str]]
    needle: str
    setup: Callable[[Work], object] = lambda work: None
    code: int = BAD
    fault: Callable[[pytest.MonkeyPatch], None] | None = None  # an environment fault injected into the process


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
]


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, originals, tmp_path, monkeypatch, capsys):
    root = tmp_path / "work"
    inputs = ("llama", "prompt", "qwen2", "lora", "steering")
    work = Work(root, *(shutil.copytree(originals[k], root / k) for k in inputs), tmp_path / "cwd")
    work.cwd.mkdir()
    case.setup(work)
    argv = case.argv(work)
    before = snapshot(tmp_path)
    monkeypatch.chdir(work.cwd)
    if case.fault:
        case.fault(monkeypatch)
    assert main(argv) == case.code
    # as a terminal shows it: progress bars redraw after "\r" and are erased when they close
    err = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    err = [line for line in err if line.strip()]
    assert len(err) == 1 and case.needle in err[0] and err[0].startswith("softfold"), err
    assert snapshot(tmp_path) == before  # inputs untouched, nothing written, nothing left behind


def test_the_matrix_covers_every_class():
    assert len(CASES) >= 40


def test_debug_shows_the_traceback(originals, tmp_path, capsys):
    assert main(["verify", str(tmp_path), "--debug"]) == BAD
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("softfold: error:")
