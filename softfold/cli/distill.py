"""`softfold distill`: train a soft prompt (or a LoRA, or steering vectors) so the LLM alone behaves like the LLM +
guard system."""
import argparse
from pathlib import Path

from softfold.cli.flags import (NONNEGATIVE, POSITIVE, Once, add_guard, add_model, add_out, add_prompt_sets, add_seed,
                                add_steps, finite_number, model_path, nonnegative_int, optional_path, positive_int)
from softfold.data.shipped import BENIGN_TRAIN, HARMFUL_TRAIN
from softfold.errors import UserError

# flags that belong to one --method (defaults None, so a flag given to the other method is caught)
METHOD_FLAGS = {"prompt": ("num_virtual_tokens",), "lora": ("lora_rank", "lora_alpha", "lora_target_modules"),
                "steering": ("steering_layers", "steering_init", "steering_scale")}
WRITES = {"prompt": "soft prompt", "lora": "LoRA adapter", "steering": "steering vectors"}


def add_to(sub) -> None:
    p = sub.add_parser("distill", help="distill the LLM + guard system into a soft prompt (PEFT prompt tuning), a "
                                       "LoRA (PEFT LoRA) or steering vectors (llama.cpp control vector)",
                       description="Train an adapter so that the LLM alone behaves like the LLM + guard system: "
                                   "refuse what the guard flags, answer the rest as before; into --out, resumed from "
                                   "its checkpoint (docs/commands.md). Runs unchanged under `accelerate launch`.")
    add_model(p)
    add_out(p)
    p.add_argument("--method", default="prompt", choices=list(METHOD_FLAGS),
                   help="what is trained: a soft prompt, a LoRA, or steering vectors (default: prompt)")
    add_prompt_sets(p, ([str(f) for f in HARMFUL_TRAIN], "the shipped training sets"),
                    ([str(f) for f in BENIGN_TRAIN], "the shipped training sets"), ([], "none"))
    p.add_argument("--pairs-per-batch", type=nonnegative_int, metavar="N",
                   help="with --pairs: N pairs side by side in every batch (default: a quarter of --batch-size)")
    add_guard(p, "labels")
    p.add_argument("--loss", default="kl", choices=["tv", "kl", "direct"], help="distillation loss (default: kl)")
    p.add_argument("--num-virtual-tokens", type=positive_int, metavar="N",
                   help="--method prompt: the soft prompt's length (default: 100)")
    p.add_argument("--lora-rank", type=positive_int, metavar="R", help="--method lora: each update's rank (default: 8)")
    p.add_argument("--lora-alpha", type=POSITIVE, metavar="A",
                   help="--method lora: the update B A is scaled by alpha / rank (default: 16)")
    p.add_argument("--lora-target-modules", nargs="+", metavar="NAME",
                   help="--method lora: the Linears to adapt, by name ending (q_proj ...) (default: all-linear)")
    p.add_argument("--steering-layers", type=int, nargs="+", metavar="N",
                   help="--method steering: the blocks a vector follows (default: the middle third)")
    p.add_argument("--steering-init", choices=["zero", "mean-difference"],
                   help="--method steering: where the vectors start (default: zero)")
    p.add_argument("--steering-scale", type=finite_number(nonzero=True), metavar="S",
                   help="--steering-init mean-difference: the mean difference times S (default: 1)")
    add_steps(p, 200)
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="prompts per step (default: 8)")
    p.add_argument("--lr", type=POSITIVE, help="Adam's learning rate (default: 1e-2; 2e-4 for --method lora)")
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="constant, or cosine from --lr down to 0 at the last step (default: constant)")
    add_seed(p)
    p.add_argument("--eval-every", type=positive_int, default=50, metavar="N",
                   help="held-out loss and checkpoint every N steps (default: 50)")
    p.add_argument("--keep-steps", action="store_true", help="also write the adapter of every --eval-every step")
    p.add_argument("--max-response-tokens", type=positive_int, default=16, metavar="N",
                   help="the teacher's reply tokens trained on (default: 16)")
    p.add_argument("--teacher-cache", metavar="FILE", action=Once,
                   help="keep the teacher's replies here, and reuse those this teacher already gave")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the frozen LLM; the adapter and the loss stay fp32")
    p.add_argument("--quantization-aware", action="store_true",
                   help="--method prompt or steering: also train through simulated 4-bit arithmetic")
    p.add_argument("--quantized-weight", type=POSITIVE, default=1.0, metavar="W",
                   help="with --quantization-aware: the quantized loss's weight against fp32's (default: 1)")
    p.add_argument("--margin", type=NONNEGATIVE, default=0.0, metavar="NATS",
                   help="also train each teacher token to lead its rival by NATS (default: 0, off)")
    p.add_argument("--opening-weight", type=POSITIVE, default=1.0, metavar="W",
                   help="the weight of each reply's first token against each later one (default: 1)")
    p.add_argument("--balanced", action="store_true", help="half of every batch refused prompts, half answered ones")
    p.add_argument("--init-from", metavar="DIR", action=Once,
                   help="--method prompt: start from this PEFT prompt-tuning directory")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # training loads torch and transformers: when the command runs, not for --help
    from softfold.distill.losses import Loss
    from softfold.distill.recipe import DistillJob, run
    from softfold.distill.train import DistillConfig, LRSchedule, Method, SteeringInit
    from softfold.inputs.control_vector import CONTROL_VECTOR_FILE

    settings = method_settings(args)
    if "steering_init" in settings:
        settings["steering_init"] = SteeringInit(settings["steering_init"])
    config = DistillConfig(method=Method(args.method), loss=Loss(args.loss), **settings, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, lr_schedule=LRSchedule(args.lr_schedule),
                           seed=args.seed, eval_every=args.eval_every, bf16=args.bf16,
                           quantization_aware=args.quantization_aware, init_from=args.init_from or "",
                           quantized_weight=args.quantized_weight, margin=args.margin,
                           opening_weight=args.opening_weight, balanced=args.balanced,
                           pairs_per_batch=pairs_per_batch(args), keep_steps=args.keep_steps)
    job = DistillJob(model=model_path(args), out=Path(args.out), config=config,
                     harmful=tuple(map(Path, args.harmful)), benign=tuple(map(Path, args.benign)),
                     pairs=tuple(map(Path, args.pairs)), guard=args.guard,
                     max_response_tokens=args.max_response_tokens, command=args.command_line,
                     teacher_cache=optional_path(args.teacher_cache), chat_template=optional_path(args.chat_template))
    history = run(job)["history"]
    loss = f" (final held-out loss {history[-1]['eval_loss']:.4f})" if history else ""
    written = Path(args.out) / CONTROL_VECTOR_FILE if args.method == "steering" else args.out
    print(f"{WRITES[args.method]}: {written}{loss}")
    return 0


def pairs_per_batch(args: argparse.Namespace) -> int:
    if args.pairs_per_batch is not None and not args.pairs:
        raise UserError("--pairs-per-batch takes --pairs FILE: pass the pair files, or drop the flag")
    if args.pairs_per_batch is not None:
        return args.pairs_per_batch
    return args.batch_size // 4 if args.pairs else 0


def method_settings(args: argparse.Namespace) -> dict:
    """The --method's own flags that were given, as DistillConfig fields; a one-line UserError for another method's."""
    for method, names in METHOD_FLAGS.items():
        given = [name for name in names if getattr(args, name) is not None]
        if given and method != args.method:
            flags = " ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"--method {args.method} takes no {flags} (--method {method} does): drop it, or pass "
                            f"--method {method}")
    settings = {name: getattr(args, name) for name in METHOD_FLAGS[args.method] if getattr(args, name) is not None}
    for name in ("lora_target_modules", "steering_layers"):
        if name in settings:
            settings[name] = tuple(settings[name])
    return settings
