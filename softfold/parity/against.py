"""Bundle vs bundle: a new export gated against the released one, through both phone engines (CI regressions).

No PyTorch reference and no base model: both bundles run their own runtime on the same prompts. The released
bundle's greedy reply is the sequence both are scored on; the gate is the refusal decisions read from the two
replies and the KL between the two bundles' next-token distributions over the reply positions.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm import tqdm

from softfold.bundle.integrity import read_manifest
from softfold.engines.chat import format_prompt
from softfold.engines.engine import bundle_engine
from softfold.engines.text_runner import cut_at_stop
from softfold.errors import UserError
from softfold.parity.gate_report import junit_suite
from softfold.reference.refusal import is_refusal


@dataclass(frozen=True)
class BundleThresholds:
    """Limits of the bundle-vs-bundle gate. Two exports of the same inputs agree exactly (KL 0); the KL limit
    leaves room for a re-export with another recipe of the same soft prompt, not for another soft prompt."""
    min_decision_agreement: float = 0.97  # prompts whose refusal decision is the same in both bundles
    max_mean_kl: float = 0.1  # mean KL(released || new) per reply position, nats

    def __post_init__(self):
        if not 0 <= self.min_decision_agreement <= 1:  # NaN too: every comparison with it is false
            raise UserError(f"--min-agreement must be within [0, 1], got {self.min_decision_agreement}")
        if not 0 <= self.max_mean_kl < math.inf:
            raise UserError(f"--max-kl must be a finite number >= 0 nats, got {self.max_mean_kl}")


@dataclass(frozen=True)
class PromptComparison:
    prompt: str
    released_text: str
    new_text: str
    released_refuses: bool
    new_refuses: bool
    positions: int  # reply positions scored: the last prompt token, then the released reply's tokens but its last
    mean_kl: float
    first_token_kl: float
    top1: float


@dataclass(frozen=True)
class BundleParityReport:
    released: str
    new: str
    thresholds: BundleThresholds
    prompts: list[PromptComparison]
    metrics: dict[str, float]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


class _Side:
    """One bundle: its manifest, tokenizer and phone engine."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.engine = bundle_engine(self.path, self.manifest)
        self.stop_strings = self.manifest["model"]["stop_strings"]

    def chat(self, prompt: str) -> tuple[str, list[int]]:
        """The prompt as the chat template renders it, and its token ids."""
        text = format_prompt(self.path, prompt)
        return text, self.tokenizer.encode(text, add_special_tokens=False).ids

    def reply(self, chat_text: str, max_new_tokens: int) -> str:
        reply = self.engine.greedy(chat_text, max_new_tokens)
        text = reply if isinstance(reply, str) else self.tokenizer.decode(reply)
        return cut_at_stop(text, self.stop_strings)


def compare_bundles(new: Path, released: Path, prompts: list[str], max_new_tokens: int = 32,
                    thresholds: BundleThresholds = BundleThresholds()) -> BundleParityReport:
    """Gate `new` against `released` on every prompt (chat template applied), greedy replies of max_new_tokens."""
    a, b = _Side(released), _Side(new)
    _check_comparable(a, b)
    results = []
    for prompt in tqdm(prompts, desc="bundle parity", unit="prompt", leave=False):
        (text_a, ids), (text_b, ids_b) = a.chat(prompt), b.chat(prompt)
        if ids != ids_b:
            raise UserError(f"the two bundles tokenize {prompt[:40]!r} differently: they hold different tokenizers "
                            "or chat templates, so their outputs cannot be compared token by token")
        released_text, new_text = a.reply(text_a, max_new_tokens), b.reply(text_b, max_new_tokens)
        room = min(max_new_tokens, *(side.manifest["model"]["context_length"] - len(ids) for side in (a, b)))
        continuation = a.tokenizer.encode(released_text, add_special_tokens=False).ids[:room] or [ids[-1]]
        want, got = (side.engine.logits(ids, continuation)[len(ids) - 1:] for side in (a, b))
        kl = F.kl_div(F.log_softmax(got, -1), F.log_softmax(want, -1), log_target=True, reduction="none").sum(-1)
        results.append(PromptComparison(
            prompt=prompt, released_text=released_text, new_text=new_text, released_refuses=is_refusal(released_text),
            new_refuses=is_refusal(new_text), positions=len(kl), mean_kl=kl.mean().clamp_min(0).item(),
            first_token_kl=kl[0].clamp_min(0).item(), top1=(got.argmax(-1) == want.argmax(-1)).float().mean().item()))
    metrics, failures = _aggregate(results, thresholds)
    return BundleParityReport(str(released), str(new), thresholds, results, metrics, failures)


def _check_comparable(a: _Side, b: _Side) -> None:
    ma, mb = a.manifest["model"], b.manifest["model"]
    for key in ("architecture", "vocab_size", "hidden_size", "num_layers"):
        if ma[key] != mb[key]:
            raise UserError(f"the bundles hold different models ({key}: {ma[key]} in {a.path}, {mb[key]} in "
                            f"{b.path}): compare exports of the same base model")


def _aggregate(results: list[PromptComparison], t: BundleThresholds) -> tuple[dict[str, float], list[str]]:
    positions = sum(r.positions for r in results)
    metrics = {
        "decision_agreement": sum(r.released_refuses == r.new_refuses for r in results) / len(results),
        "mean_kl": sum(r.mean_kl * r.positions for r in results) / positions,
        "first_token_kl": sum(r.first_token_kl for r in results) / len(results),
        "top1": sum(r.top1 * r.positions for r in results) / positions,
        "text_match": sum(r.released_text == r.new_text for r in results) / len(results),
        "released_refusal_rate": sum(r.released_refuses for r in results) / len(results),
        "new_refusal_rate": sum(r.new_refuses for r in results) / len(results),
    }
    failures = []
    if metrics["decision_agreement"] < t.min_decision_agreement:
        flipped = [r.prompt for r in results if r.released_refuses != r.new_refuses]
        failures.append(f"decision_agreement = {metrics['decision_agreement']:.4g}, needs >= "
                        f"{t.min_decision_agreement}; prompts: {flipped[:5]}")
    if metrics["mean_kl"] > t.max_mean_kl:
        worst = sorted(results, key=lambda r: -r.mean_kl)[:5]
        failures.append(f"mean_kl = {metrics['mean_kl']:.4g}, needs <= {t.max_mean_kl}; prompts: "
                        f"{[r.prompt for r in worst]}")
    return {k: round(v, 9) for k, v in metrics.items()}, failures


def write_reports(report: BundleParityReport, out_dir: Path) -> None:
    """bundle_parity.json (every prompt) and bundle_parity.md into out_dir."""
    data = {"released": report.released, "new": report.new, "passed": report.passed, "metrics": report.metrics,
            "thresholds": asdict(report.thresholds), "failures": report.failures,
            "prompts": [asdict(r) for r in report.prompts]}
    (out_dir / "bundle_parity.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (out_dir / "bundle_parity.md").write_text(markdown(report))


def markdown(report: BundleParityReport) -> str:
    t = report.thresholds
    limits = {"decision_agreement": f">= {t.min_decision_agreement}", "mean_kl": f"<= {t.max_mean_kl}"}
    lines = [f"# Bundle parity: {'PASSED' if report.passed else 'FAILED'}", "",
             f"Released: `{report.released}`. New: `{report.new}`. Both through their phone engines.", "",
             "| metric | value | limit |", "|---|---|---|"]
    lines += [f"| {k} | {v:.6g} | {limits.get(k, '')} |" for k, v in report.metrics.items()]
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report.failures]
    lines += ["", "## Per prompt", "", "| prompt | refuses (released/new) | mean KL | first-token KL | same text |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.prompt[:50]} | {r.released_refuses}/{r.new_refuses} | {r.mean_kl:.3g} | {r.first_token_kl:.3g} "
              f"| {r.released_text == r.new_text} |" for r in report.prompts]
    return "\n".join(lines) + "\n"


def junit_xml(report: BundleParityReport) -> str:
    return junit_suite("softfold-bundle-parity", "bundle_parity", report.metrics, report.failures)
