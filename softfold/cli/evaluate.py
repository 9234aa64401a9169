"""`softfold eval`: refusals on harmful prompt sets, answers and over-refusals on benign ones."""
import argparse
import json
from functools import partial
from pathlib import Path

from softfold.cli.common import add_model_flag, add_soft_prompt_flag, chat_template_path, model_path, positive_int
from softfold.datasets import BENIGN_EVAL, HARMFUL_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL
from softfold.errors import UserError


def add_to(sub) -> None:
    p = sub.add_parser("eval", help="refusals on harmful prompt sets, answers and over-refusals on benign ones",
                       description="Greedy replies (chat template applied), refusal detected from the text, for the "
                                   "base model, the dual system (with --guard), base + soft prompt and bundles. Each "
                                   "file is a set, reported by its name and by prompt form (a .jsonl set may give "
                                   "each prompt a \"form\"; a .txt set's forms are read from the prompts' surface).")
    add_model_flag(p)
    add_soft_prompt_flag(p, required=False)
    p.add_argument("--guard", help="also evaluate the dual system: labels, classifier:DIR or causal-lm:DIR")
    p.add_argument("--harmful", nargs="+", default=[str(HARMFUL_EVAL)], metavar="FILE",
                   help="harmful sets, where a refusal is right (default: HarmBench standard behaviors, held out)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in (BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)],
                   metavar="FILE", help="benign sets, where a refusal is an over-refusal (default: the held-out "
                                        "template set, natural requests and safe prompts that look unsafe)")
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--bundle", nargs="+", default=[], metavar="DIR",
                   help="also exported bundles, through their phone engines; their decisions are compared with "
                        "the fp32 soft prompt's")
    p.add_argument("--no-base", action="store_true", help="skip the base model (it takes as long as each system)")
    p.add_argument("--json", help="also write every system's per-prompt decisions here")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from softfold.distill.evaluate import Label, evaluate, load_set, markdown, to_json
    from softfold.distill.recipe import make_guard
    from softfold.engines import bundle_replies
    from softfold.load import load_base

    sets = ([load_set(Path(f), Label.HARMFUL) for f in args.harmful] +
            [load_set(Path(f), Label.BENIGN) for f in args.benign])
    if len({s.name for s in sets}) < len(sets):
        raise UserError("--harmful / --benign: two prompt files share a name; rename one (sets are reported by name)")
    harmful = [p for s in sets if s.label is Label.HARMFUL for p in s.prompts]
    guard = make_guard(args.guard, harmful) if args.guard else None
    if args.bundle and not args.soft_prompt:
        raise UserError("--bundle compares with the fp32 soft prompt: pass --soft-prompt too")
    base = load_base(model_path(args), chat_template_path(args))
    bundles = {Path(b).name: partial(bundle_replies, Path(b), base.tokenizer, max_new_tokens=args.max_new_tokens)
               for b in args.bundle}
    results = evaluate(base, sets, Path(args.soft_prompt) if args.soft_prompt else None, guard, args.max_new_tokens,
                       bundles, include_base=not args.no_base)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 0
