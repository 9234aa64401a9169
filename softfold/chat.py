"""`softfold run`: chat with a bundle through the engine a phone uses.

ExecuTorch's TextLLMRunner for .pte bundles, onnxruntime-genai for .onnx bundles.
"""
import contextlib
import ctypes
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from jinja2.sandbox import ImmutableSandboxedEnvironment

from softfold.bundle import read_manifest
from softfold.errors import UserError


def chat_template(bundle: Path) -> str:
    jinja_file = bundle / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text()
    config = json.loads((bundle / "tokenizer_config.json").read_text())
    if not config.get("chat_template"):
        raise UserError(f"bundle {bundle} has no chat template: export it again")
    return config["chat_template"]


def format_prompt(bundle: Path, user_text: str) -> str:
    """The chat template rendered for one user turn, as transformers' apply_chat_template does."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    config = json.loads((bundle / "tokenizer_config.json").read_text())
    template = env.from_string(chat_template(bundle))
    return template.render(messages=[{"role": "user", "content": user_text}], add_generation_prompt=True,
                           bos_token=config.get("bos_token", ""), eos_token=config.get("eos_token", ""))


def load_text_runner(bundle: Path):
    """ExecuTorch's C++ TextLLMRunner over the bundle, the engine under Android's LlmModule."""
    import executorch.kernels.quantized  # noqa: F401  (quantized embedding kernels)
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (llama::custom_sdpa kernels)
    from executorch.extension.llm.runner import TextLLMRunner

    return TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    new_tokens: int
    time_to_first_token_ms: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def _reply(text: str, stats) -> Reply:
    prefill_ms = max(stats.prompt_eval_end_ms - stats.inference_start_ms, 1)
    decode_ms = max(stats.inference_end_ms - stats.prompt_eval_end_ms, 1)
    return Reply(text, stats.num_prompt_tokens, stats.num_generated_tokens,
                 stats.first_token_ms - stats.inference_start_ms,
                 1000 * stats.num_prompt_tokens / prefill_ms,
                 1000 * max(stats.num_generated_tokens - 1, 0) / decode_ms)


def generate(bundle: Path, user_text: str, max_new_tokens: int = 256,
             on_token: Callable[[str], None] | None = None) -> Reply:
    """Greedy reply through the bundle's phone engine, streamed to `on_token`, with timings."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    budget = min(max_new_tokens, manifest["model"]["context_length"])
    if manifest["backend"] == "onnx":
        return _generate_genai(bundle, user_text, budget, on_token)
    if manifest["backend"] != "executorch":
        raise UserError(f"bundle {bundle} is a {manifest['backend']} bundle, which runs in an OrtSession of "
                        "your app; softfold run chats with executorch and onnx bundles")
    pieces: list[str] = []
    stop_strings = set(manifest["model"]["stop_strings"])

    def collect(piece: str) -> None:
        if stop_strings.intersection(pieces):
            return  # the runner generates on after an end-of-turn first token; the reply has ended
        pieces.append(piece)
        if piece in stop_strings:
            runner.stop()
        elif on_token:
            on_token(piece)

    stats = []
    with native_output_silenced():
        runner = load_text_runner(bundle)
        from executorch.extension.llm.runner import GenerationConfig

        runner.generate(format_prompt(bundle, user_text),
                        GenerationConfig(echo=False, max_new_tokens=budget, temperature=0.0),
                        token_callback=collect, stats_callback=stats.append)
    return _reply("".join(p for p in pieces if p not in stop_strings), stats[-1])


def _generate_genai(bundle: Path, user_text: str, max_new_tokens: int,
                    on_token: Callable[[str], None] | None) -> Reply:
    """onnxruntime-genai, the engine under ORT GenAI on Android."""
    import onnxruntime_genai as og

    model = og.Model(str(bundle))
    tokenizer = og.Tokenizer(model)
    stream = tokenizer.create_stream()
    ids = tokenizer.encode(format_prompt(bundle, user_text))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(ids)
    prefill_done = time.perf_counter()
    pieces, first_token = [], None
    while not generator.is_done():
        generator.generate_next_token()
        first_token = first_token or time.perf_counter()
        piece = stream.decode(int(generator.get_next_tokens()[0]))
        pieces.append(piece)
        if on_token:
            on_token(piece)
    end = time.perf_counter()
    new = len(pieces)
    return Reply("".join(pieces), len(ids), new, round(1000 * ((first_token or end) - start)),
                 len(ids) / max(prefill_done - start, 1e-9), max(new - 1, 0) / max(end - (first_token or end), 1e-9))


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Mute the C++ runner, which prints every token and its logs to fds 1 and 2 itself.

    Python's sys.stdout keeps writing to the real terminal meanwhile (the streamed reply); import
    warnings of the runtimes, on stderr, are muted with the rest.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    real_out = os.fdopen(os.dup(saved[0]), "w")
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        with contextlib.redirect_stdout(real_out):
            yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio buffers go to /dev/null, not to the restored fds
        real_out.close()
        for fd, target in zip(saved, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.close(devnull)


def stream_to_stdout(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
