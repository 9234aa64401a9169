"""The parity gate (docs/gate.md): an exported bundle's engine measured against the fp32 PyTorch reference,
prompt by prompt, as data."""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from softfold.data.shipped import DEFAULT_PROMPTS
from softfold.engines.engine import Engine
from softfold.engines.text_runner import cut_at_stop
from softfold.errors import UserError
from softfold.inputs.chat_template import chat_text
from softfold.reference.reference import Reference, RefSample
from softfold.reference.refusal import is_refusal

GREEDY_TOKENS = 64


@dataclass(frozen=True)
class Thresholds:
    """Gate limits. A metric fails when it is on the wrong side of its limit."""
    max_rel_dlogit: float = 1e-4  # max |Δlogit| / max |reference logit|, over every user position
    max_mean_kl: float = 1e-6  # mean KL(reference || exported) per position, nats
    min_top1: float = 0.99  # fraction of positions whose argmax agrees
    min_top5_overlap: float = 0.98  # mean |top5 ∩ top5| / 5
    min_exact_match: float = 0.9  # prompts whose greedy continuation equals the reference's
    min_engine_match: float = 0.9  # prompts whose phone-engine greedy text equals the reference's
    min_refusal_agreement: float = 0.97  # prompts whose refusal decision (from the text) matches the reference's


# Quantized recipes: looser on numbers, as strict as fp32 on behavior (refusal decisions).
QUANTIZED = Thresholds(max_rel_dlogit=1.0, max_mean_kl=0.25, min_top1=0.75, min_top5_overlap=0.6,
                       min_exact_match=0.0, min_engine_match=0.0, min_refusal_agreement=0.97)

# Half precision: fp16's 11-bit mantissa moves logits ~1e-3 relative; long greedy runs may drift apart.
HALF = Thresholds(max_rel_dlogit=2e-2, max_mean_kl=1e-3, min_top1=0.98, min_top5_overlap=0.95,
                  min_exact_match=0.5, min_engine_match=0.5, min_refusal_agreement=0.97)


def recipe_thresholds(recipe) -> Thresholds:
    return {"fp32": Thresholds(), "fp16": HALF}.get(recipe.value, QUANTIZED)


@dataclass(frozen=True)
class GateConfig:
    """The export's parity gate: its prompts, its limits (None: the recipe's own, `recipe_thresholds`), and whether
    the phone engine's own greedy loop is run too (off only where a test needs the logits alone)."""
    prompts: tuple[str, ...] = tuple(DEFAULT_PROMPTS)
    thresholds: Thresholds | None = None
    check_engine: bool = True


@dataclass
class PromptResult:
    prompt: str
    positions: int
    max_abs_dlogit: float
    max_abs_logit: float
    mean_kl: float
    top1: float
    top5_overlap: float
    greedy_prefix: int  # longest common greedy prefix, in new tokens
    greedy_tokens: int  # new tokens the reference generated
    exact_match: bool
    engine_match: bool | None = None
    reference_text: str = ""
    engine_text: str | None = None
    reference_refuses: bool = False
    engine_refuses: bool | None = None
    dlogit_by_position: list[float] = field(default_factory=list)


@dataclass
class ParityReport:
    recipe: str
    thresholds: Thresholds
    prompts: list[PromptResult]
    metrics: dict[str, float]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        return {"passed": self.passed, "prompts": len(self.prompts), **self.metrics}


def compare_prompt(ref: RefSample, got: torch.Tensor) -> PromptResult:
    want = ref.logits[: got.shape[0]]
    dlogit = (got - want).abs().amax(-1)
    kl = F.kl_div(F.log_softmax(got, -1), F.log_softmax(want, -1), log_target=True, reduction="none").sum(-1)
    top5 = [len(set(a.tolist()) & set(b.tolist())) / 5 for a, b in zip(got.topk(5).indices, want.topk(5).indices)]
    start = len(ref.prompt_ids) - 1
    agree = (got.argmax(-1)[start:] == torch.tensor(ref.continuation)).tolist()
    prefix = agree.index(False) if False in agree else len(agree)
    return PromptResult(
        prompt=ref.prompt, positions=got.shape[0], max_abs_dlogit=dlogit.max().item(),
        max_abs_logit=want.abs().max().item(), mean_kl=kl.mean().clamp_min(0).item(),
        top1=(got.argmax(-1) == want.argmax(-1)).float().mean().item(), top5_overlap=sum(top5) / len(top5),
        greedy_prefix=prefix, greedy_tokens=len(agree), exact_match=prefix == len(agree),
        dlogit_by_position=[round(x, 8) for x in dlogit.tolist()],
    )


def aggregate(results: list[PromptResult], t: Thresholds) -> tuple[dict[str, float], list[str]]:
    n_pos = sum(r.positions for r in results)
    engine = [r.engine_match for r in results if r.engine_match is not None]
    metrics = {
        "max_abs_dlogit": max(r.max_abs_dlogit for r in results),
        "rel_dlogit": max(r.max_abs_dlogit for r in results) / max(r.max_abs_logit for r in results),
        "mean_kl": sum(r.mean_kl * r.positions for r in results) / n_pos,
        "top1": sum(r.top1 * r.positions for r in results) / n_pos,
        "top5_overlap": sum(r.top5_overlap * r.positions for r in results) / n_pos,
        "mean_greedy_prefix": sum(r.greedy_prefix for r in results) / len(results),
        "exact_match": sum(r.exact_match for r in results) / len(results),
    }
    if engine:
        metrics["engine_match"] = sum(engine) / len(engine)
        judged = [r for r in results if r.engine_refuses is not None]
        metrics["refusal_agreement"] = sum(r.engine_refuses == r.reference_refuses for r in judged) / len(judged)
        metrics["reference_refusal_rate"] = sum(r.reference_refuses for r in judged) / len(judged)
        metrics["engine_refusal_rate"] = sum(r.engine_refuses for r in judged) / len(judged)
    checks = [
        ("rel_dlogit", metrics["rel_dlogit"] <= t.max_rel_dlogit, f"<= {t.max_rel_dlogit}",
         [r.prompt for r in results if r.max_abs_dlogit > t.max_rel_dlogit * r.max_abs_logit]),
        ("mean_kl", metrics["mean_kl"] <= t.max_mean_kl, f"<= {t.max_mean_kl}",
         [r.prompt for r in results if r.mean_kl > t.max_mean_kl]),
        ("top1", metrics["top1"] >= t.min_top1, f">= {t.min_top1}", [r.prompt for r in results if r.top1 < 1]),
        ("top5_overlap", metrics["top5_overlap"] >= t.min_top5_overlap, f">= {t.min_top5_overlap}",
         [r.prompt for r in results if r.top5_overlap < 1]),
        ("exact_match", metrics["exact_match"] >= t.min_exact_match, f">= {t.min_exact_match}",
         [r.prompt for r in results if not r.exact_match]),
    ]
    if engine:
        checks.append(("engine_match", metrics["engine_match"] >= t.min_engine_match, f">= {t.min_engine_match}",
                       [r.prompt for r in results if r.engine_match is False]))
        checks.append(("refusal_agreement", metrics["refusal_agreement"] >= t.min_refusal_agreement,
                       f">= {t.min_refusal_agreement}",
                       [r.prompt for r in results if r.engine_refuses not in (None, r.reference_refuses)]))
    failures = [f"{name} = {metrics[name]:.6g}, needs {limit}; prompts: {bad[:5]}"
                for name, ok, limit, bad in checks if not ok]
    return {k: round(v, 9) for k, v in metrics.items()}, failures


@dataclass(frozen=True)
class ReferenceSamples:
    """The reference's side of a gate: each prompt's greedy continuation and logits, its token budget, and what
    decodes them. Taken before the engine exists, so an export can free the PyTorch model before it lowers."""
    samples: list[RefSample]
    budgets: list[int]
    tokenizer: object
    eos_ids: list[int]


def sample_reference(reference: Reference, prompts: list[str], context_length: int) -> ReferenceSamples:
    """The reference's greedy continuation of every prompt (chat template applied), GREEDY_TOKENS long or what the
    context leaves after the prompt, with its logits at every user position."""
    budgets = [min(GREEDY_TOKENS, context_length - len(reference.prompt_ids(p))) for p in prompts]
    for prompt, budget in zip(prompts, budgets):
        if budget < 1:
            raise UserError(f"parity prompt {prompt[:40]!r} fills the {context_length}-token context with the chat "
                            "template: raise --max-context or shorten the prompt")
    samples = [reference.sample(prompt, budget)
               for prompt, budget in tqdm(list(zip(prompts, budgets)), desc="reference", unit="prompt", leave=False)]
    return ReferenceSamples(samples, budgets, reference.tokenizer, list(reference.eos_ids))


def measure_engine(reference: ReferenceSamples, engine: Engine, recipe: str, thresholds: Thresholds | None = None,
                   check_engine: bool = True) -> ParityReport:
    """An engine (softfold.engines) measured against the reference's samples: its logits along each continuation,
    and (check_engine) its own greedy reply."""
    thresholds = thresholds or Thresholds()
    tokenizer = reference.tokenizer
    stop_pieces = [tokenizer.decode([i]) for i in reference.eos_ids]
    results = []
    for ref, budget in tqdm(list(zip(reference.samples, reference.budgets)), desc="parity", unit="prompt",
                            leave=False):
        result = compare_prompt(ref, engine.logits(ref.prompt_ids, ref.continuation))
        result.reference_text = cut_at_stop(tokenizer.decode(ref.continuation), stop_pieces)
        if check_engine:
            reply = engine.greedy(chat_text(tokenizer, ref.prompt), budget)
            text = reply if isinstance(reply, str) else tokenizer.decode(reply)
            result.engine_text = cut_at_stop(text, stop_pieces)
            # the reference's tokens shown as the engine shows text (TextLLMRunner drops half characters)
            expected = cut_at_stop(engine.reply_text(ref.continuation, tokenizer), stop_pieces)
            result.engine_match = result.engine_text == expected
            result.engine_refuses = is_refusal(result.engine_text)
        result.reference_refuses = is_refusal(result.reference_text)
        results.append(result)
    metrics, failures = aggregate(results, thresholds)
    return ParityReport(recipe, thresholds, results, metrics, failures)


def run_parity(reference: Reference, engine: Engine, prompts: list[str], recipe: str, context_length: int,
               thresholds: Thresholds | None = None, check_engine: bool = True) -> ParityReport:
    """Measure an engine against the reference on every prompt: `sample_reference`, then `measure_engine`."""
    return measure_engine(sample_reference(reference, prompts, context_length), engine, recipe, thresholds,
                          check_engine)
