"""The runtimes a bundle must run in (docs/runtimes.md), behind one small interface for parity.

Each engine gives (a) logits at every user position of a token sequence, through the same
runtime the phone uses, and (b) a greedy reply from the phone's own engine: text from ExecuTorch's
TextLLMRunner (.pte), token ids from onnxruntime-genai (.onnx, .ort), whose decode drops special
tokens.
"""
import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from softfold.bundle.integrity import read_manifest
from softfold.bundle.virtual_tokens import VirtualTokens, read_virtual_tokens
from softfold.engines import text_runner
from softfold.engines.text_runner import RunnerText, cut_at_stop, load_text_runner
from softfold.inputs.chat_template import chat_text
from softfold.native_io import muted


class Engine(Protocol):
    """What parity needs from a runtime: logits through its real call pattern, and its own greedy reply."""

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        """[len(prompt_ids) + len(continuation) - 1, vocab]: every position's next-token logits."""

    def reply_logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        """The rows of `logits` from the last prompt position on (what the reply is decided from)."""

    def greedy(self, chat_text: str, max_new_tokens: int) -> str | list[int]:
        """The phone engine's greedy reply: text (TextLLMRunner) or token ids (onnxruntime-genai)."""

    def reply_text(self, ids: list[int], tokenizer) -> str:
        """The text this engine's greedy reply shows for these token ids: how the gate renders the reference's reply
        to compare it with the engine's on equal terms."""


class ExecuTorchEngine:
    def __init__(self, bundle: Path):
        text_runner.register_kernels()
        with muted():  # XNNPACK's cpuinfo probe prints to stdout
            from executorch.runtime import Runtime

            self.method = Runtime.get().load_program(str(bundle / "model.pte")).load_method("forward")
        self.bundle = bundle
        self.runner = None
        self.runner_text: RunnerText | None = None

    def _forward(self, ids: list[int], pos: int) -> torch.Tensor:
        return self.method.execute([torch.tensor([ids]), torch.tensor([pos])])[0][0].float()

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        # The prompt positions before the last, one token at a time, then the runtime's real path (reply_logits).
        head = [self._forward([tok], i) for i, tok in enumerate(prompt_ids[:-1])]
        reply = self.reply_logits(prompt_ids, continuation)
        return torch.cat([torch.stack(head), reply]) if head else reply

    def reply_logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        """Logits from the last prompt position on: one prefill call, then one decode call per token."""
        rows = [self._forward(prompt_ids, 0)]
        for i, tok in enumerate(continuation[:-1]):
            rows.append(self._forward([tok], len(prompt_ids) + i))
        return torch.stack(rows)

    def greedy(self, chat_text: str, max_new_tokens: int) -> str:
        self.runner = self.runner or load_text_runner(self.bundle)
        text, _ = text_runner.greedy(self.runner, chat_text, max_new_tokens, stop_strings=[])
        return text

    def reply_text(self, ids: list[int], tokenizer) -> str:
        """As TextLLMRunner prints them: it drops a byte that is half a UTF-8 character, where a decode of the whole
        reply shows U+FFFD."""
        self.runner_text = self.runner_text or RunnerText(self.bundle / "tokenizer.json")
        return self.runner_text(ids)


class OnnxEngine:
    def __init__(self, bundle: Path, model_file: str):
        import onnxruntime as ort

        self.bundle = bundle
        self.session = ort.InferenceSession(str(bundle / model_file), providers=["CPUExecutionProvider"])
        self.past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self.genai = None
        self.context = json.loads((bundle / "genai_config.json").read_text())["model"]["context_length"]

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        cache = empty_cache(self.session)
        rows, done = [], 0
        for chunk in [prompt_ids] + [[tok] for tok in continuation[:-1]]:  # prefill, then one token per call
            done += len(chunk)
            feed = {"input_ids": np.array([chunk], dtype=np.int64), "attention_mask": np.ones((1, done), dtype=np.int64)}
            logits, *present = self.session.run(None, {**feed, **cache})
            rows.append(logits[0])
            cache = dict(zip(self.past_names, present))
        return torch.from_numpy(np.concatenate(rows))

    def reply_logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        """Logits from the last prompt position on (the prefill returns every prompt position anyway)."""
        return self.logits(prompt_ids, continuation)[len(prompt_ids) - 1:]

    def greedy(self, chat_text: str, max_new_tokens: int) -> list[int]:
        """Greedy token ids from onnxruntime-genai, the engine under ORT GenAI on Android."""
        import onnxruntime_genai as og

        # onnxruntime-genai loads for ONNX bundles only, never beside ExecuTorch's runner
        from softfold.engines import genai_runner

        self.genai = self.genai or og.Model(str(self.bundle))
        prompt_ids = og.Tokenizer(self.genai).encode(chat_text)
        budget = min(max_new_tokens, self.context - len(prompt_ids))  # past the context, onnxruntime-genai throws
        return genai_runner.greedy(self.genai, prompt_ids, budget).ids if budget > 0 else []

    def reply_text(self, ids: list[int], tokenizer) -> str:
        return tokenizer.decode(ids)


def empty_cache(session) -> dict[str, np.ndarray]:
    """A request's KV-cache inputs: zero buffers of the graph's fixed length (the soft prompt's slots included),
    batch 1. Each call's `present` outputs are the next call's `past` inputs."""
    return {i.name: np.zeros([1, *i.shape[1:]], dtype=np.float32) for i in session.get_inputs()
            if i.name.startswith("past_key_values.")}


class VirtualTokenEngine:
    """A virtual-token bundle seen as the reference sees it: every sequence starts with the N virtual tokens,
    and logits are reported for the user positions only."""

    def __init__(self, engine: ExecuTorchEngine | OnnxEngine, virtual: VirtualTokens):
        self.engine, self.virtual = engine, virtual

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        return self.engine.logits(self.virtual.ids + prompt_ids, continuation)[len(self.virtual.ids):]

    def reply_logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        return self.engine.reply_logits(self.virtual.ids + prompt_ids, continuation)

    def greedy(self, chat_text: str, max_new_tokens: int) -> str | list[int]:
        return self.engine.greedy(self.virtual.text + chat_text, max_new_tokens)

    def reply_text(self, ids: list[int], tokenizer) -> str:
        return self.engine.reply_text(ids, tokenizer)


def engine_for(bundle: Path, backend: str, model_file: str, virtual: VirtualTokens | None = None) -> Engine:
    engine = ExecuTorchEngine(bundle) if backend == "executorch" else OnnxEngine(bundle, model_file)
    return VirtualTokenEngine(engine, virtual) if virtual else engine


def bundle_engine(bundle: Path, manifest: dict) -> Engine:
    """The engine of an exported bundle, taking prompts as the base model's tokenizer writes them."""
    return engine_for(Path(bundle), manifest["backend"], manifest["model"]["file"], read_virtual_tokens(manifest))


def bundle_replies(bundle: Path, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy replies through the bundle's phone engine, cut at its stop strings as an app does."""
    manifest = read_manifest(Path(bundle))
    engine = bundle_engine(Path(bundle), manifest)
    out = []
    for prompt in tqdm(prompts, desc=Path(bundle).name, leave=False):
        reply = engine.greedy(chat_text(tokenizer, prompt), max_new_tokens)
        text = reply if isinstance(reply, str) else tokenizer.decode(reply)
        out.append(cut_at_stop(text, manifest["model"]["stop_strings"]))
    return out
