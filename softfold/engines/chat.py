"""`softfold run`: chat with a bundle through the engine a phone uses.

ExecuTorch's TextLLMRunner for .pte bundles, onnxruntime-genai for .onnx bundles.
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from softfold.bundle.integrity import read_manifest
from softfold.engines import text_runner
from softfold.engines.text_runner import load_text_runner
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
    return prompt_renderer(bundle)(user_text)


def prompt_renderer(bundle: Path) -> Callable[[str], str]:
    """`format_prompt` for one bundle, its template compiled once (for many prompts)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    config = json.loads((bundle / "tokenizer_config.json").read_text())
    template = env.from_string(chat_template(bundle))
    return lambda user_text: template.render(messages=[{"role": "user", "content": user_text}],
                                             add_generation_prompt=True, bos_token=config.get("bos_token", ""),
                                             eos_token=config.get("eos_token", ""))


def check_text(user_text: str) -> None:
    """The message is text (a non-UTF-8 command line arrives as lone surrogates); else a one-line UserError."""
    try:
        user_text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError("the prompt is not valid UTF-8 text: pass it from a UTF-8 terminal or file") from None


def check_prompt(bundle: Path, user_text: str) -> None:
    """The message fits the bundle's context with room for a reply; else a one-line UserError."""
    context = read_manifest(bundle)["model"]["context_length"]
    tokens = len(Tokenizer.from_file(str(bundle / "tokenizer.json")).encode(format_prompt(bundle, user_text)).ids)
    if tokens >= context:
        raise UserError(f"the prompt takes {tokens} tokens with its chat template, but {bundle} holds "
                        f"{context}: shorten it, or export with a larger --max-context")


def check_prompt_files(bundle: Path, sources: list[tuple[Path, Sequence[str]]]) -> None:
    """Every prompt of every file fits the bundle's context with room for a reply, counted by the bundle's own
    tokenizer and chat template, before any of them runs; else a one-line UserError naming the file, the line and
    the limit. `sources`: (file, the prompts read from it)."""
    context = read_manifest(bundle)["model"]["context_length"]
    tokenizer, render = Tokenizer.from_file(str(bundle / "tokenizer.json")), prompt_renderer(bundle)
    for path, prompts in sources:
        counts = [len(e.ids) for e in tokenizer.encode_batch([render(p) for p in prompts])]
        too_long = next(((p, n) for p, n in zip(prompts, counts) if n >= context), None)
        if too_long:
            prompt, tokens = too_long
            raise UserError(f"{path}:{line_of(Path(path), prompt)}: the prompt takes {tokens} tokens with its chat "
                            f"template, but {bundle} holds {context}: shorten it or drop it, or export with a larger "
                            "--max-context")


def line_of(path: Path, prompt: str) -> int | str:
    """The first line of a prompt file that holds `prompt` (as text, or as a JSON line's field), 1-based; "?" when
    none does."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() == prompt or _json_field_holds(line, prompt):
            return number
    return "?"


def _json_field_holds(line: str, prompt: str) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and any(isinstance(v, str) and v.strip() == prompt for v in record.values())


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    new_tokens: int
    time_to_first_token_ms: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def _reply(text: str, stats: dict) -> Reply:
    """From the runner's PyTorchObserver stats (milliseconds)."""
    start, prefill_end, end = stats["inference_start_ms"], stats["prompt_eval_end_ms"], stats["inference_end_ms"]
    prompt, new = stats["prompt_tokens"], stats["generated_tokens"]
    return Reply(text, prompt, new, stats["first_token_ms"] - start, 1000 * prompt / max(prefill_end - start, 1),
                 1000 * max(new - 1, 0) / max(end - prefill_end, 1))


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
    runner = load_text_runner(bundle)
    text, stats = text_runner.greedy(runner, format_prompt(bundle, user_text), budget,
                                       manifest["model"]["stop_strings"], on_text=on_token)
    return _reply(text, stats)


def _generate_genai(bundle: Path, user_text: str, max_new_tokens: int,
                    on_token: Callable[[str], None] | None) -> Reply:
    """onnxruntime-genai, the engine under ORT GenAI on Android (loaded here only: not beside the ExecuTorch runner)."""
    import onnxruntime_genai as og

    # onnxruntime-genai loads for ONNX bundles only, never beside ExecuTorch's runner
    from softfold.engines import genai_runner

    model = og.Model(str(bundle))
    tokenizer = og.Tokenizer(model)
    stream = tokenizer.create_stream()
    pieces: list[str] = []

    def emit(token: int) -> None:
        pieces.append(stream.decode(token))
        if on_token:
            on_token(pieces[-1])

    prompt_ids = tokenizer.encode(format_prompt(bundle, user_text))
    budget = min(max_new_tokens, read_manifest(bundle)["model"]["context_length"] - len(prompt_ids))
    run = genai_runner.greedy(model, prompt_ids, budget, emit)  # past the context, onnxruntime-genai throws
    new = len(run.ids)
    return Reply("".join(pieces), run.prompt_tokens, new, round(1000 * (run.first_token - run.start)),
                 run.prompt_tokens / max(run.prefill_done - run.start, 1e-9),
                 max(new - 1, 0) / max(run.end - run.first_token, 1e-9))


def stream_to_stdout(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
