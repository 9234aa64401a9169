"""`softfold run`: chat with a bundle through the engine a phone uses (ExecuTorch's TextLLMRunner)."""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    """Greedy reply from the bundle's model.pte, streamed to `on_token`, with the runner's timings."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if manifest["backend"] != "executorch":
        raise UserError(f"bundle {bundle} is for {manifest['backend']}; softfold run supports executorch bundles")
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    runner = TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))
    budget = min(max_new_tokens, manifest["model"]["context_length"])
    pieces: list[str] = []

    def collect(piece: str) -> None:
        pieces.append(piece)
        if on_token:
            on_token(piece)

    stats = []
    runner.generate(format_prompt(bundle, user_text),
                    GenerationConfig(echo=False, max_new_tokens=budget, temperature=0.0),
                    token_callback=collect, stats_callback=stats.append)
    return _reply("".join(pieces), stats[-1])


def stream_to_stdout(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
