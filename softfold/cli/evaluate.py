"""`softfold eval`: refusals on harmful prompt sets, answers and over-refusals on benign ones."""
import argparse
import json
from functools import partial
from pathlib import Path

from softfold.cli.common import (add_adapter_flag, add_model_flag, add_soft_prompt_flag, add_steering_flag,
                                 chat_template_path, model_path, positive_int)
from softfold.datasets import BENIGN_EVAL, HARMFUL_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL
from softfold.errors import UserError


def add_to(sub) -> None:
    p = sub.add_parser("eval", help="refusals on harmful prompt sets, answers and over-refusals on benign ones",
                       description="Greedy replies (chat template applied), refusal detected from the text, for the "
                                   "base model, the dual system (with --guard), the student (base + --soft-prompt, "
                                   "--adapter and/or --steering-vector, fp32 PyTorch) and bundles. Each "
                                   "file is a set, reported by its name and by prompt form (a .jsonl set may give "
                                   "each prompt a \"form\"; a .txt set's forms are read from the prompts' surface).")
    add_model_flag(p)
    add_soft_prompt_flag(p, required=False)
    add_adapter_flag(p, help="PEFT LoRA adapter directory (`softfold distill --method lora`), applied unmerged as PEFT "
                             "computes it; alone or with --soft-prompt / --steering-vector")
    add_steering_flag(p, help="llama.cpp control-vector GGUF (`softfold distill --method steering`), each vector added "
                              "after its block; alone or with --soft-prompt / --adapter")
    p.add_argument("--guard", help="also evaluate the dual system: labels, classifier:DIR or causal-lm:DIR")
    p.add_argument("--harmful", nargs="+", default=[str(HARMFUL_EVAL)], metavar="FILE",
                   help="harmful sets, where a refusal is right (default: HarmBench standard behaviors, held out)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in (BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)],
                   metavar="FILE", help="benign sets, where a refusal is an over-refusal (default: the held-out "
                                        "template set, natural requests and safe prompts that look unsafe)")
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--bundle", nargs="+", default=[], metavar="DIR",
                   help="also exported bundles, through their phone engines; their decisions are compared with "
                        "the fp32 student's (the --soft-prompt, --adapter and/or --steering-vector they were "
                        "exported with)")
    p.add_argument("--no-base", action="store_true", help="skip the base model (it takes as long as each system)")
    p.add_argument("--json", help="also write every system's per-prompt decisions here")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # torch-loading modules, imported when the command runs: `softfold --help` and the other commands skip them
    from softfold.distill.evaluate import Label, evaluate, load_set, markdown, student_name, to_json
    from softfold.distill.recipe import make_guard
    from softfold.engines import bundle_replies
    from softfold.load import load_base
    from softfold.lora import load_lora
    from softfold.steering import load_steering

    sets = ([load_set(Path(f), Label.HARMFUL) for f in args.harmful] +
            [load_set(Path(f), Label.BENIGN) for f in args.benign])
    if len({s.name for s in sets}) < len(sets):
        raise UserError("--harmful / --benign: two prompt files share a name; rename one (sets are reported by name)")
    harmful = [p for s in sets if s.label is Label.HARMFUL for p in s.prompts]
    guard = make_guard(args.guard, harmful) if args.guard else None
    if args.bundle and not (args.soft_prompt or args.adapter or args.steering_vector):
        raise UserError("--bundle compares with the fp32 student: pass the --soft-prompt, --adapter and/or "
                        "--steering-vector the bundles were exported with")
    base = load_base(model_path(args), chat_template_path(args))
    adapter = load_lora(args.adapter, base.config) if args.adapter else None
    steering = load_steering(args.steering_vector, base.config) if args.steering_vector else None
    bundles = {Path(b).name: partial(bundle_replies, Path(b), base.tokenizer, max_new_tokens=args.max_new_tokens)
               for b in args.bundle}
    soft_prompt = Path(args.soft_prompt) if args.soft_prompt else None
    results = evaluate(base, sets, soft_prompt, guard, args.max_new_tokens, bundles, include_base=not args.no_base,
                       adapter=adapter, steering=steering)
    print(markdown(results, student_name(soft_prompt, adapter, steering)))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 0
