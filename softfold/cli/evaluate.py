"""`softfold eval`: refusals on harmful prompt sets, answers and over-refusals on benign ones."""
import argparse
import json
import random
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from softfold.cli.flags import (add_adapter_flag, add_model_flag, add_soft_prompt_flag, add_steering_flag,
                                chat_template_path, check_writable_file, model_path, positive_int)
from softfold.data.shipped import BENIGN_EVAL, HARMFUL_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL, PAIRS_EVAL
from softfold.errors import UserError

SAMPLE_SEED = 0  # --limit's sample: one seed, so every run of a command evaluates the same prompts
PROBE_BATCH = 16  # replies timed for the estimate: one batch, as the PyTorch systems generate them


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
    p.add_argument("--harmful", nargs="*", default=[str(HARMFUL_EVAL)], metavar="FILE",
                   help="harmful sets, where a refusal is right (default: HarmBench standard behaviors, held out; "
                        "--harmful with no file: none, e.g. to pick a checkpoint on your own sets alone)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in (BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)],
                   metavar="FILE", help="benign sets, where a refusal is an over-refusal (default: the held-out "
                                        "template set, natural requests and safe prompts that look unsafe)")
    p.add_argument("--pairs", nargs="*", default=[str(PAIRS_EVAL)], metavar="FILE",
                   help="minimal-pair files: safe members are a benign set (NAME:safe), unsafe twins a harmful one "
                        "(NAME:unsafe), reported per kind and per pair (default: the held-out pairs, on unsafe words "
                        "no training file uses; --pairs with no file: none)")
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--bundle", nargs="+", default=[], metavar="DIR",
                   help="also exported bundles, through their phone engines; their decisions are compared with "
                        "the fp32 student's (the --soft-prompt, --adapter and/or --steering-vector they were "
                        "exported with)")
    p.add_argument("--no-base", action="store_true", help="skip the base model (it takes as long as each system)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="at most N prompts of each set, a seeded sample (the same N prompts every run; a pair file's "
                        "safe and unsafe halves keep the same pairs): a quick look before a long run")
    p.add_argument("--json", help="also write every system's per-prompt decisions here")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # torch-loading modules, imported when the command runs: `softfold --help` and the other commands skip them
    from softfold.distill.safety_eval import Label, evaluate, load_pair_sets, load_set, markdown, student_name, to_json
    from softfold.distill.guards import guard_for
    from softfold.engines.engine import bundle_replies
    from softfold.inputs.base_model import load_base

    check_writable_file(args.json, "--json")
    sources = ([(Path(f), load_set(Path(f), Label.HARMFUL)) for f in args.harmful] +
               [(Path(f), load_set(Path(f), Label.BENIGN)) for f in args.benign] +
               [(Path(f), s) for f in args.pairs for s in load_pair_sets(Path(f))])
    sets = [sampled(s, args.limit) for _, s in sources]
    if len({s.name for s in sets}) < len(sets):
        raise UserError("--harmful / --benign: two prompt files share a name; rename one (sets are reported by name)")
    student = args.soft_prompt or args.adapter or args.steering_vector
    if args.no_base and not (student or args.guard or args.bundle):
        raise UserError("eval --no-base leaves nothing to evaluate: pass --soft-prompt, --adapter and/or "
                        "--steering-vector (the student), --guard or --bundle, or drop --no-base")
    if args.bundle and not student:
        raise UserError("--bundle compares with the fp32 student: pass the --soft-prompt, --adapter and/or "
                        "--steering-vector the bundles were exported with")
    adapter, steering = read_student(args)
    check_bundles(args.bundle, [(path, s.prompts) for (path, _), s in zip(sources, sets)])
    harmful = [p for s in sets if s.label is Label.HARMFUL for p in s.prompts]
    guard = guard_for(args.guard, harmful) if args.guard else None
    base = load_base(model_path(args), chat_template_path(args))
    soft_prompt = Path(args.soft_prompt) if args.soft_prompt else None
    systems = ["base"] if not args.no_base or guard else []
    systems += [student_name(soft_prompt, adapter, steering)] if student else []
    print(workload(base, sets, systems + [Path(b).name for b in args.bundle], args.max_new_tokens), file=sys.stderr)
    bundles = {Path(b).name: partial(bundle_replies, Path(b), base.tokenizer, max_new_tokens=args.max_new_tokens)
               for b in args.bundle}
    results = evaluate(base, sets, soft_prompt, guard, args.max_new_tokens, bundles, include_base=not args.no_base,
                       adapter=adapter, steering=steering)
    print(markdown(results, student_name(soft_prompt, adapter, steering)))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 0


def read_student(args: argparse.Namespace):
    """The soft prompt, LoRA and control vector checked against the model's config, before the model loads; the
    adapter and the vectors, as loaded (None where not given)."""
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.inputs.base_model import check_chat_template_input, read_config
    from softfold.inputs.soft_prompt import load_soft_prompt
    from softfold.inputs.lora import load_lora
    from softfold.inputs.control_vector import load_steering

    config = read_config(model_path(args))
    check_chat_template_input(model_path(args), chat_template_path(args))
    if args.soft_prompt:
        load_soft_prompt(Path(args.soft_prompt), config.hidden_size)
    adapter = load_lora(args.adapter, config) if args.adapter else None
    steering = load_steering(args.steering_vector, config) if args.steering_vector else None
    return adapter, steering


def check_bundles(bundles: list[str], sources: list[tuple[Path, tuple[str, ...]]]) -> None:
    """Each bundle verified (and said when it failed its gate at export), and every prompt fitting its context."""
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.api import Bundle
    from softfold.engines.chat import check_prompt_files

    for path in bundles:
        bundle = Bundle(Path(path)).opened()
        check_prompt_files(bundle.path, sources)


def sampled(prompt_set, limit: int | None):
    """At most `limit` prompts of the set, a seeded sample kept in the file's order: the same for every run, and
    the same positions for two sets of one length (a pair file's safe and unsafe halves)."""
    n = len(prompt_set.prompts)
    if limit is None or n <= limit:
        return prompt_set
    keep = sorted(random.Random(SAMPLE_SEED).sample(range(n), limit))

    def pick(values: tuple) -> tuple:
        return tuple(values[i] for i in keep) if values else values

    return replace(prompt_set, prompts=pick(prompt_set.prompts), forms=pick(prompt_set.forms),
                   kinds=pick(prompt_set.kinds))


def workload(base, sets, systems: list[str], max_new_tokens: int) -> str:
    """The run's size, said before it starts, and its time estimated from one batch of the base model's full-length
    replies (replies that end early cost less; the bundles' engines run one prompt at a time)."""
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.reference.greedy import greedy_batch
    from softfold.inputs.chat_template import chat_ids

    prompts = [p for s in sets for p in s.prompts]
    probe = [chat_ids(base.tokenizer, p) for p in prompts[:PROBE_BATCH]]
    start = time.perf_counter()
    greedy_batch(base.model, probe, max_new_tokens, stop=set())
    per_reply = (time.perf_counter() - start) / len(probe)
    replies = len(prompts) * len(systems)
    return (f"softfold eval: {len(prompts):,} prompts ({len(sets)} sets) x {len(systems)} systems "
            f"({', '.join(systems)}) = {replies:,} greedy replies of up to {max_new_tokens} tokens, about "
            f"{_duration(replies * per_reply)} here (timed on one batch); --limit N samples N prompts per set")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
