"""How far the training labels can carry: a linear probe on the base model's own prompt representation.

    python -m softfold.distill.probe [--harmful FILE ...] [--benign FILE ...] [--pairs FILE ...] [--json OUT]

Each prompt, in the chat template, runs once through the base model; its hidden state at the last prompt position
(where the reply's first token is decided) is the feature, one per layer. A logistic regression per layer learns
harmful-vs-benign from the training files' labels and is scored on softfold's own held-out sets (the held-out unsafe
twins refused; their safe members and the benign sets answered). It trains in seconds where a soft prompt takes an
hour, so it screens training data: a label boundary the probe cannot draw on a held-out set is one the distilled
student is unlikely to learn from the same files. The layer reported is chosen on a 10% split of the training
prompts, never on the held-out sets. Public benchmarks (HarmBench) are never read here: choosing data by them would
tune to the sets users judge the prompt by.

Beside each layer's own boundary, the trade-off its scores allow: moved to the threshold that refuses a given share
of the held-out unsafe twins (`--refused`, 95% by default: the shipped prompt's refusal gate), what share of each
benign set is still answered. That threshold is read off a held-out set itself, so it is an upper bound for this
readout, not a usable classifier: a layer that misses a benign gate there misses it at every threshold.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from softfold.data.prompt_files import is_pair_file, read_pairs, read_prompt_files
from softfold.data.shipped import BENIGN_TRAIN, HARMFUL_EVAL, HARMFUL_TRAIN, HELD_OUT
from softfold.inputs.base_model import BaseModel, read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.named_models import resolve_model


@torch.no_grad()
def last_position_states(base: BaseModel, prompts: list[str], desc: str = "features", batch_size: int = 16) -> torch.Tensor:
    """[prompts, layers + 1, hidden]: every layer's hidden state at each chat-formatted prompt's last position
    (batched, left-padded: padding is masked out and skipped by the position ids, so each row is its own forward)."""
    rows = []
    ids = [chat_ids(base.tokenizer, prompt) for prompt in prompts]
    for start in tqdm(range(0, len(ids), batch_size), desc=desc, unit="batch", file=sys.stderr, leave=False):
        chunk = ids[start:start + batch_size]
        width = max(map(len, chunk))
        tokens = torch.tensor([[0] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        decoder = getattr(base.model, base.model.base_model_prefix)  # no LM head: a fifth of the compute, unused
        out = decoder(input_ids=tokens, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                      output_hidden_states=True)
        rows.append(torch.stack([h[:, -1] for h in out.hidden_states], 1))
    return torch.cat(rows)


@dataclass(frozen=True)
class Probe:
    """A standardized logistic regression: harmful when (x - mean) / std . w + b > 0."""
    mean: torch.Tensor
    std: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std) @ self.w + self.b

    def harmful(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x) > 0


def fit_probe(x: torch.Tensor, harmful: torch.Tensor, weight_decay: float = 1e-3) -> Probe:
    """L2-regularized logistic regression by L-BFGS (deterministic: no sampling)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, harmful) + weight_decay * w.square().sum()
        value.backward()
        return value

    opt.step(loss)
    return Probe(mean, std, w.detach(), b.detach())


def answered_at(scores: dict[str, torch.Tensor], harmful_set: str, refused: float,
                harmful: frozenset[str] = frozenset()) -> dict[str, float]:
    """At the threshold that refuses `refused` of `harmful_set` (ties refused): each benign set's share answered,
    and each other `harmful` set's share refused."""
    ranked = scores[harmful_set].sort(descending=True).values
    threshold = ranked[max(1, math.ceil(refused * len(ranked) - 1e-9)) - 1]  # the k-th highest score refuses k
    return {name: ((s >= threshold) if name in harmful else (s < threshold)).sum().item() / len(s)
            for name, s in scores.items() if name != harmful_set}


def probe_layers(train_x: torch.Tensor, labels: torch.Tensor, held_out: dict[str, tuple[torch.Tensor, bool]],
                 seed: int = 0, refused: float = 0.95) -> list[dict]:
    """Per layer: validation accuracy on a 10% split of the training prompts, each held-out set's rate of correct
    decisions (harmful sets refused, benign sets answered), and under "at_refused" the other sets' rates at the
    threshold refusing `refused` of the first harmful held-out set."""
    harmful_set = next(name for name, (_, is_harmful) in held_out.items() if is_harmful)
    harmful = frozenset(name for name, (_, is_harmful) in held_out.items() if is_harmful)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val, fit = order[: len(order) // 10], order[len(order) // 10:]
    rows = []
    for layer in range(train_x.shape[1]):
        probe = fit_probe(train_x[fit, layer], labels[fit])
        row = {"layer": layer, "validation": (probe.harmful(train_x[val, layer]) == labels[val].bool()).float().mean().item()}
        scores = {name: probe.score(x[:, layer]) for name, (x, _) in held_out.items()}
        for name, (_, is_harmful) in held_out.items():
            row[name] = ((scores[name] > 0) == is_harmful).float().mean().item()
        row["at_refused"] = answered_at(scores, harmful_set, refused, harmful)
        rows.append(row)
    return rows


def markdown(rows: list[dict], refused: float, threshold_set: str) -> str:
    names = [k for k in rows[0] if k not in ("layer", "validation", "at_refused")]
    moved = list(rows[0]["at_refused"])
    best = max(rows, key=lambda r: r["validation"])
    header = names + [f"{n} at {refused:.0%} {threshold_set} refused" for n in moved]
    lines = ["| layer | validation | " + " | ".join(header) + " |", "|---" * (len(header) + 2) + "|"]
    for r in rows:
        mark = " (chosen)" if r is best else ""
        cells = [r[n] for n in names] + [r["at_refused"][n] for n in moved]
        lines.append(f"| {r['layer']}{mark} | {r['validation']:.1%} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    return "\n".join(lines)


def held_out_sets() -> list[tuple[str, list[str], bool]]:
    """(name, prompts, harmful) of softfold's own held-out sets, the held-out unsafe twins first (the threshold set);
    a pair file as its unsafe and safe halves. HarmBench, a public benchmark, is left out."""
    sets = []
    for path in (p for p in HELD_OUT if p != HARMFUL_EVAL):
        name = path.name.split(".")[0]
        if is_pair_file(path):
            pairs = read_pairs(path)
            sets += [(f"{name}:unsafe", [p.unsafe for p in pairs], True), (f"{name}:safe", [p.safe for p in pairs], False)]
        else:
            sets.append((name, read_prompt_files((path,)), False))
    return sorted(sets, key=lambda s: not s[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m softfold.distill.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--harmful", nargs="+", type=Path, default=list(HARMFUL_TRAIN), help="harmful training files")
    parser.add_argument("--benign", nargs="+", type=Path, default=list(BENIGN_TRAIN), help="benign training files")
    parser.add_argument("--pairs", nargs="+", type=Path, default=[], help="minimal-pair training files (safe "
                        "members benign, unsafe twins harmful)")
    parser.add_argument("--without-pairs", action="store_true",
                        help="with --pairs: also fit each layer's probe on the files without the pairs (the same "
                             "features), and print both tables: what the pairs add")
    parser.add_argument("--refused", type=float, default=0.95,
                        help="the share of the held-out unsafe twins refused at which to read the other sets' "
                             "trade-off (default: 0.95)")
    parser.add_argument("--json", type=Path, help="also write the per-layer rows here")
    args = parser.parse_args(argv)
    if not 0 < args.refused <= 1:
        parser.error(f"--refused is a share of the held-out unsafe twins in (0, 1], got {args.refused}")
    base = read_model(resolve_model(args.model)).load()
    pairs = [pair for path in args.pairs for pair in read_pairs(path)]
    harmful = read_prompt_files(tuple(args.harmful)) + [p.unsafe for p in pairs]
    benign = read_prompt_files(tuple(args.benign)) + [p.safe for p in pairs]
    x = last_position_states(base, harmful + benign, "training prompts")
    labels = torch.cat([torch.ones(len(harmful)), torch.zeros(len(benign))])
    sets = held_out_sets()
    held_out = {name: (last_position_states(base, prompts, name), is_harmful) for name, prompts, is_harmful in sets}
    rows = probe_layers(x, labels, held_out, refused=args.refused)
    tables = {"with the pairs" if pairs else "": rows}
    if args.without_pairs and pairs:
        plain = torch.tensor([p not in {q.unsafe for q in pairs} | {q.safe for q in pairs} for p in harmful + benign])
        tables["without the pairs"] = probe_layers(x[plain], labels[plain], held_out, refused=args.refused)
    for name, table in tables.items():
        print(f"\n{name}:\n" if name else "", markdown(table, args.refused, sets[0][0]), sep="")
    if args.json:
        args.json.write_text(json.dumps(rows if len(tables) == 1 else tables, indent=1) + "\n")


if __name__ == "__main__":
    main()
