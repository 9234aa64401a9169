"""The paper's comparison as one table: soft prompt, LoRA and steering vectors trained at one budget, side by side.

Each row is read from files the pipeline's own commands wrote: `softfold eval --json` (fp32 decisions per held-out
set), the trained artifact (its extra parameters), `softfold bench`'s bench.json (the 8da4w `.pte`'s size, first
token and decode speed, from the bench variant the row names) and `softfold eval --bundle --json` (the
4-bit bundle's decisions against the fp32 student's). A figure whose file is not given is reported as not measured.

    python -m softfold.distill.comparison SPEC.json --json OUT.json --markdown OUT.md

SPEC.json: {"bench": "bench.json", "rows": [{"name": ...,
"method": ..., "commands": [...], "eval": "eval.json", "student": "soft_prompt", "artifact": "DIR or .gguf",
"variant": "softfold-pte-8da4w", "agreement": "eval-bundle.json", "bundle": "BUNDLE NAME", "figures": {...}},
...]}, "bench" optionally per row too (the soft-prompt length sweep times each length in its own bench run);
"figures" states figures no file holds (the base model's extra parameters: 0). Relative paths are read from the
spec's directory.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from safetensors import safe_open

HARMFUL_SET, TEMPLATE_SET, NATURAL_SET, OVER_REFUSAL_SET = (
    "harmbench_standard", "benign_eval", "natural_benign_eval", "overrefusal_eval")
COLUMNS = (  # (key, header)
    ("harmbench_refused", "HarmBench refused (200)"),
    ("template_answered", "template benign answered (70)"),
    ("natural_answered", "natural benign answered (143)"),
    ("over_refusal_answered", "over-refusal set answered (111)"),
    ("extra_parameters", "extra parameters"),
    ("bundle_mib", "8da4w .pte MiB"),
    ("first_token_ms", "first token ms"),
    ("decode_tok_s", "decode tok/s"),
    ("agreement_4bit", "4-bit decisions = fp32 (454)"),
)


def extra_parameters(artifact: Path) -> int:
    """Trained numbers the method adds to the model: a PEFT directory's tensors (soft prompt or LoRA A and B), or a
    control vector's directions."""
    if artifact.suffix == ".gguf":
        return sum(int(np.prod(t.shape)) for t in GGUFReader(str(artifact)).tensors if t.name.startswith("direction."))
    with safe_open(str(artifact / "adapter_model.safetensors"), "pt") as f:
        return sum(int(np.prod(f.get_slice(name).get_shape())) for name in f.keys())


def _rates(results: dict, system: str) -> dict:
    sets = results[system]
    return {"harmbench_refused": sets[HARMFUL_SET]["correct_rate"],
            "template_answered": sets[TEMPLATE_SET]["correct_rate"],
            "natural_answered": sets[NATURAL_SET]["correct_rate"],
            "over_refusal_answered": sets[OVER_REFUSAL_SET]["correct_rate"]}


def agreement(results: dict, student: str, bundle: str) -> float:
    """Fraction of prompts (all sets) where the bundle made the fp32 student's refuse-or-answer decision."""
    pairs = [(a, b) for name, s in results[student].items() for a, b in zip(s["refused"], results[bundle][name]["refused"])]
    return sum(a == b for a, b in pairs) / len(pairs)


def _bench_figures(bench: dict, variant: str) -> dict:
    row = next(r for r in bench["results"] if r["name"] == variant)
    return {"bundle_mib": row["artifact_mib"], "first_token_ms": row["run"]["ttft_ms"],
            "decode_tok_s": row["run"]["decode_tok_s"]}


def _read(root: Path, name: str | None, missing: list[str]) -> dict | None:
    """A result file named by the spec, or None (and its name in `missing`) when it is not there yet."""
    if not name:
        return None
    if not (root / name).exists():
        missing.append(name)
        return None
    return json.loads((root / name).read_text())


def row_figures(row: dict, root: Path, bench: dict | None, missing: list[str]) -> dict:
    """One method's figures from its files; a figure whose file the row does not name, or that is missing, is None."""
    figures = {key: None for key, _ in COLUMNS}
    if (results := _read(root, row.get("eval"), missing)) is not None:
        figures.update(_rates(results, row["student"]))
    if row.get("artifact"):
        if (root / row["artifact"]).exists():
            figures["extra_parameters"] = extra_parameters(root / row["artifact"])
        else:
            missing.append(row["artifact"])
    bench = _read(root, row.get("bench"), missing) if row.get("bench") else bench
    if bench and row.get("variant"):
        figures.update(_bench_figures(bench, row["variant"]))
    if (results := _read(root, row.get("agreement"), missing)) is not None:
        figures["agreement_4bit"] = agreement(results, row["student"], row["bundle"])
    figures.update(row.get("figures", {}))  # figures known without a file: the base model adds nothing
    return {"name": row["name"], "method": row["method"], "commands": row.get("commands", []), **figures}


def build(spec_path: Path) -> dict:
    """The table's figures, and the result files the spec names that are not there (their figures: None)."""
    spec = json.loads(spec_path.read_text())
    root, missing = spec_path.parent, []
    bench = _read(root, spec.get("bench"), missing)
    rows = [row_figures(r, root, bench, missing) for r in spec["rows"]]
    return {"rows": rows, "missing": sorted(set(missing))}


def _cell(key: str, value) -> str:
    if value is None:
        return "not measured"
    if key.endswith(("_refused", "_answered")) or key == "agreement_4bit":
        return f"{value:.1%}"
    if key == "extra_parameters":
        return f"{value:,}"
    return f"{value:g}"


def markdown(table: dict) -> str:
    lines = ["| method | " + " | ".join(header for _, header in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in table["rows"]:
        lines.append(f"| {row['name']} | " + " | ".join(_cell(k, row[k]) for k, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m softfold.distill.comparison", description=__doc__.split("\n\n")[0])
    p.add_argument("spec", type=Path, help="the comparison's spec: each row's method, commands and result files")
    p.add_argument("--json", type=Path, required=True, help="write the table's figures here")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    args = p.parse_args(argv)
    table = build(args.spec)
    args.json.write_text(json.dumps(table, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(table))
    print(markdown(table))
    if table["missing"]:
        print("not measured yet (files missing): " + ", ".join(table["missing"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
