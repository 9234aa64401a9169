"""The runtimes a bundle must run in (DESIGN.md section 4), behind one small interface for parity.

Each engine gives (a) logits at every user position of a token sequence, through the same
runtime the phone uses, and (b) a greedy reply from the phone's own engine: text from ExecuTorch's
TextLLMRunner (.pte), token ids from onnxruntime-genai (.onnx, .ort), whose decode drops special
tokens.
"""
from pathlib import Path

import numpy as np
import torch

from softfold import text_runner
from softfold.native_io import muted
from softfold.text_runner import load_text_runner
from softfold.virtual_tokens import VirtualTokens, virtual_tokens


class ExecuTorchEngine:
    def __init__(self, bundle: Path):
        text_runner.register_kernels()
        with muted():  # XNNPACK's cpuinfo probe prints to stdout
            from executorch.runtime import Runtime

            self.method = Runtime.get().load_program(str(bundle / "model.pte")).load_method("forward")
        self.bundle = bundle
        self.runner = None

    def _forward(self, ids: list[int], pos: int) -> torch.Tensor:
        return self.method.execute([torch.tensor([ids]), torch.tensor([pos])])[0][0].float()

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        # The runtime's real path: one prefill call, then one decode call per token...
        rows = [self._forward(prompt_ids, 0)]
        for i, tok in enumerate(continuation[:-1]):
            rows.append(self._forward([tok], len(prompt_ids) + i))
        # ...and the prompt positions before the last, one token at a time.
        head = [self._forward([tok], i) for i, tok in enumerate(prompt_ids[:-1])]
        return torch.stack(head + rows)

    def greedy(self, chat_text: str, max_new_tokens: int) -> str:
        self.runner = self.runner or load_text_runner(self.bundle)
        text, _ = text_runner.generate(self.runner, chat_text, max_new_tokens, stop_strings=[])
        return text


class OnnxEngine:
    def __init__(self, bundle: Path, model_file: str):
        import onnxruntime as ort

        self.bundle = bundle
        self.session = ort.InferenceSession(str(bundle / model_file), providers=["CPUExecutionProvider"])
        self.past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self.kv_shape = self.session.get_inputs()[2].shape  # [batch, kv_heads, past, head_dim]
        self.genai = None

    def _run(self, ids: list[int], past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        total = len(ids) + past[0].shape[2]
        feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, total), dtype=np.int64),
                **dict(zip(self.past_names, past))}
        logits, *present = self.session.run(None, feed)
        return logits[0], present

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        empty = np.zeros((1, self.kv_shape[1], 0, self.kv_shape[3]), dtype=np.float32)
        rows, past = self._run(prompt_ids, [empty] * len(self.past_names))  # prefill: every prompt position
        rows = [rows]
        for tok in continuation[:-1]:
            step, past = self._run([tok], past)
            rows.append(step)
        return torch.from_numpy(np.concatenate(rows))

    def greedy(self, chat_text: str, max_new_tokens: int) -> list[int]:
        """Greedy token ids from onnxruntime-genai, the engine under ORT GenAI on Android."""
        import onnxruntime_genai as og

        self.genai = self.genai or og.Model(str(self.bundle))
        model = self.genai
        tokenizer = og.Tokenizer(model)
        ids = tokenizer.encode(chat_text)
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        new = []
        while not generator.is_done():
            generator.generate_next_token()
            new.append(int(generator.get_next_tokens()[0]))
        return new


class VirtualTokenEngine:
    """A virtual-token bundle seen as the reference sees it: every sequence starts with the N virtual tokens,
    and logits are reported for the user positions only."""

    def __init__(self, engine: ExecuTorchEngine | OnnxEngine, virtual: VirtualTokens):
        self.engine, self.virtual = engine, virtual

    def logits(self, prompt_ids: list[int], continuation: list[int]) -> torch.Tensor:
        return self.engine.logits(self.virtual.ids + prompt_ids, continuation)[len(self.virtual.ids):]

    def greedy(self, chat_text: str, max_new_tokens: int) -> str | list[int]:
        return self.engine.greedy(self.virtual.text + chat_text, max_new_tokens)


def engine_for(bundle: Path, backend: str, model_file: str, virtual: VirtualTokens | None = None):
    engine = ExecuTorchEngine(bundle) if backend == "executorch" else OnnxEngine(bundle, model_file)
    return VirtualTokenEngine(engine, virtual) if virtual else engine


def bundle_engine(bundle: Path, manifest: dict):
    """The engine of an exported bundle, taking prompts as the base model's tokenizer writes them."""
    return engine_for(Path(bundle), manifest["backend"], manifest["model"]["file"], virtual_tokens(manifest))
