"""`softfold eval`: refusals on harmful prompt sets, answers and over-refusals on benign ones."""
import argparse
import json
import sys
from functools import partial
from pathlib import Path

from softfold.cli.flags import (add_adapter, add_guard, add_json, add_max_new_tokens, add_model, add_prompt_sets,
                                add_soft_prompt, add_steering_vector, model_path, optional_path, positive_int)
from softfold.cli.verdicts import check_writable_file
from softfold.data.shipped import BENIGN_EVAL, HARMFUL_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL, PAIRS_EVAL
from softfold.engines.chat import check_prompt_files
from softfold.errors import UserError


def add_to(sub) -> None:
    p = sub.add_parser("eval", help="refusals on harmful prompt sets, answers and over-refusals on benign ones",
                       description="Greedy replies (chat template applied), refusal read from the text, for the base "
                                   "model, the dual system (--guard), the student (the base model with --soft-prompt, "
                                   "--adapter and/or --steering-vector, fp32 PyTorch) and bundles; per set, prompt "
                                   "form and kind (docs/commands.md). Says its size and time first.")
    add_model(p)
    add_soft_prompt(p)
    add_adapter(p)
    add_steering_vector(p)
    add_guard(p, None)
    add_prompt_sets(p, ([str(HARMFUL_EVAL)], "HarmBench"),
                    ([str(f) for f in (BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)], "the held-out sets"),
                    ([str(PAIRS_EVAL)], "the held-out pairs"))
    add_max_new_tokens(p, 48)
    p.add_argument("--bundle", nargs="+", default=[], metavar="DIR",
                   help="also these bundles, through their phone engines, compared with the fp32 student")
    p.add_argument("--no-base", action="store_true", help="skip the base model (it takes as long as each system)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="at most N prompts of each set: a seeded sample, the same every run")
    add_json(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # the systems load torch and the runtimes: when the command runs, not for --help
    from softfold.api import Bundle
    from softfold.distill.guards import guard_for
    from softfold.distill.safety_eval import (Label, evaluate, load_pair_sets, load_set, markdown, student_name,
                                              to_json, workload)
    from softfold.engines.engine import bundle_replies
    from softfold.inputs.read import read_inputs

    check_writable_file(args.json, "--json")
    sources = ([(Path(f), load_set(Path(f), Label.HARMFUL)) for f in args.harmful] +
               [(Path(f), load_set(Path(f), Label.BENIGN)) for f in args.benign] +
               [(Path(f), s) for f in args.pairs for s in load_pair_sets(Path(f))])
    sets = [s.sampled(args.limit) for _, s in sources]
    if len({s.name for s in sets}) < len(sets):
        raise UserError("--harmful / --benign: two prompt files share a name; rename one (sets are reported by name)")
    student = args.soft_prompt or args.adapter or args.steering_vector
    if args.no_base and not (student or args.guard or args.bundle):
        raise UserError("eval --no-base leaves nothing to evaluate: pass --soft-prompt, --adapter and/or "
                        "--steering-vector (the student), --guard or --bundle, or drop --no-base")
    if args.bundle and not student:
        raise UserError("--bundle compares with the fp32 student: pass the --soft-prompt, --adapter and/or "
                        "--steering-vector the bundles were exported with")
    inputs = read_inputs(model_path(args), optional_path(args.chat_template), args.soft_prompt, args.adapter,
                         args.steering_vector)  # checked in seconds, before the weights load
    sampled_files = [(file, s.prompts) for (file, _), s in zip(sources, sets)]
    for bundle in args.bundle:  # verified, and every prompt fits its context
        check_prompt_files(Bundle(Path(bundle)).opened().path, sampled_files)
    harmful = [p for s in sets if s.label is Label.HARMFUL for p in s.prompts]
    guard = guard_for(args.guard, harmful) if args.guard else None
    base = inputs.model.load()
    name = student_name(inputs.soft_prompt, inputs.adapter, inputs.steering)
    systems = (["base"] if not args.no_base or guard else []) + ([name] if student else [])
    print(workload(base, sets, systems + [Path(b).name for b in args.bundle], args.max_new_tokens), file=sys.stderr)
    bundles = {Path(b).name: partial(bundle_replies, Path(b), base.tokenizer, max_new_tokens=args.max_new_tokens)
               for b in args.bundle}
    results = evaluate(base, sets, inputs.soft_prompt, guard, args.max_new_tokens, bundles,
                       include_base=not args.no_base, adapter=inputs.adapter, steering=inputs.steering)
    print(markdown(results, name))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 0
