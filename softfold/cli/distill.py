"""`softfold distill`: train a soft prompt (or a LoRA, or steering vectors) so the LLM alone behaves like the LLM +
guard system."""
import argparse
from pathlib import Path

from softfold.cli.flags import (NONNEGATIVE, POSITIVE, add_model_flag, chat_template_path, finite_number, model_path,
                                positive_int)
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
                                   "refuse what the guard flags, answer the rest as before. --method prompt trains N "
                                   "virtual tokens (folded into bundles by `softfold export --soft-prompt`); --method "
                                   "lora trains low-rank updates of the LLM's Linears (merged into the weights by "
                                   "`softfold export --adapter`); --method steering trains one vector per chosen "
                                   "layer added to the residual stream after it, written as llama.cpp's control-vector "
                                   "GGUF OUT/control_vector.gguf (added by `softfold export --steering-vector`, and by "
                                   "llama.cpp's --control-vector). Same data, guard, teacher, losses and budget each "
                                   "way. Resumes from OUT's checkpoint. Runs unchanged under `accelerate launch`. The "
                                   "classic untrained steering baseline: --method steering --steering-init "
                                   "mean-difference --steps 0.")
    add_model_flag(p)
    p.add_argument("--out", required=True, help="directory to write (and resume from): a PEFT adapter (prompt "
                                                "tuning or LoRA) or control_vector.gguf (steering), with "
                                                "softfold_distill.json (provenance) beside its files")
    p.add_argument("--method", default="prompt", choices=list(METHOD_FLAGS),
                   help="what is trained: prompt, N virtual tokens (PEFT prompt tuning); lora, low-rank updates B A "
                        "of the LLM's Linears (PEFT LoRA); steering, a vector added to the residual stream after "
                        "each --steering-layers block (llama.cpp control vector) (default: prompt)")
    p.add_argument("--harmful", nargs="+", default=[str(f) for f in HARMFUL_TRAIN], metavar="FILE",
                   help="harmful training prompt files, .txt or .jsonl (default: the shipped Do-Not-Answer and "
                        "imperative sets)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in BENIGN_TRAIN], metavar="FILE",
                   help="benign training prompt files (default: the shipped benign sets)")
    p.add_argument("--pairs", nargs="+", default=[], metavar="FILE",
                   help="minimal-pair files (.jsonl of safe / unsafe twins sharing an unsafe word, e.g. the shipped "
                        "softfold/data/prompt_sets/pairs_train.jsonl): safe members answered, unsafe ones refused")
    p.add_argument("--pairs-per-batch", type=int, metavar="N",
                   help="with --pairs: N pairs in every batch, both members; the rest of the batch balanced on the "
                        "decision and on the unsafe words (default: a quarter of --batch-size)")
    p.add_argument("--guard", default="labels", help="labels (the prompt files' labels), classifier:DIR (HF "
                                                      "sequence classifier) or causal-lm:DIR (Llama Guard style)")
    p.add_argument("--loss", default="kl", choices=["tv", "kl", "direct"], help="distillation loss (default: kl)")
    p.add_argument("--num-virtual-tokens", type=positive_int, help="--method prompt: soft prompt length (default: 100)")
    p.add_argument("--lora-rank", type=positive_int, help="--method lora: rank r of each update (default: 8)")
    p.add_argument("--lora-alpha", type=POSITIVE, help="--method lora: the update B A is scaled by alpha / r "
                                                       "(default: 16)")
    p.add_argument("--lora-target-modules", nargs="+", metavar="NAME",
                   help="--method lora: the Linears to adapt, by name (q_proj v_proj ...: every Linear whose name ends "
                        "so), or all-linear (the default): every attention and MLP projection (Phi-3's fused qkv_proj "
                        "and gate_up_proj too), the LM head left out. All of them, because LoRA on the attention "
                        "projections alone falls short of full fine-tuning where all-linear matches it (QLoRA, "
                        "Dettmers et al. 2023), and a merged update costs the bundle nothing")
    p.add_argument("--steering-layers", type=int, nargs="+", metavar="N",
                   help="--method steering: the blocks whose output gets a vector, by llama.cpp's index (direction.N "
                        "is added after block N, 0-based; 1 to layers - 1: llama.cpp never steers layer 0) (default: "
                        "the middle third of the blocks, n / 3 <= N < 2 n / 3 of n, e.g. 10-19 of SmolLM2-135M's 30: "
                        "the band where refusal is linearly readable and adding a direction steers it best "
                        "(Arditi et al. 2024, Rimsky et al. 2024), past the early layers' token features and before "
                        "the last layers that turn the decision into tokens)")
    p.add_argument("--steering-init", choices=["zero", "mean-difference"],
                   help="--method steering: where the vectors start: zero (the LLM itself; the default) or "
                        "mean-difference (the classic baseline: per layer, the mean residual activation at the last "
                        "prompt token over the refused (flagged) training prompts minus that over the answered ones, "
                        "times --steering-scale). With --steps 0, that baseline is written untrained (no teacher run)")
    p.add_argument("--steering-scale", type=finite_number(nonzero=True), metavar="S",
                   help="--method steering --steering-init mean-difference: multiply the mean difference by S "
                        "(default: 1)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default: 200; 0 only for the untrained "
                                                          "mean-difference steering baseline)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--lr", type=POSITIVE, help="Adam's learning rate (default: 1e-2 for prompt and steering, 2e-4 "
                                               "for lora)")
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="constant, or cosine: from --lr down to 0 at the last step (a quieter end for long runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=50, help="held-out loss and checkpoint every N steps")
    p.add_argument("--keep-steps", action="store_true",
                   help="also write the adapter at every --eval-every step to OUT/steps/STEP, to evaluate each and "
                        "pick one on your own held-out sets")
    p.add_argument("--max-response-tokens", type=positive_int, default=16, help="teacher response tokens trained on")
    p.add_argument("--teacher-cache", metavar="FILE", help="save the teacher's responses and distributions here, "
                   "and reuse those of every prompt the same teacher (model, guard, refusal, --max-response-tokens) "
                   "already answered: loss or lr sweeps and grown data sets skip the teacher's work")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the frozen LLM (faster on CPUs with "
                                                       "AVX512-BF16 and on GPUs); the adapter and the loss stay fp32")
    p.add_argument("--quantization-aware", action="store_true",
                   help="--method prompt or steering: also train through the 4-bit bundles' arithmetic (8da4w / "
                        "int4: group-32 weights, int8 activations, simulated), so refusals survive quantization; two "
                        "forwards per step")
    p.add_argument("--quantized-weight", type=POSITIVE, default=1.0, metavar="W",
                   help="with --quantization-aware: weight of the quantized model's loss against the fp32 one's "
                        "(above 1 favors agreement of the 4-bit bundles over the fp32 prompt's own fit)")
    p.add_argument("--margin", type=NONNEGATIVE, default=0.0, metavar="NATS",
                   help="also train each teacher reply token to lead the student's next likeliest one by NATS "
                        "(a hinge; default 0, off). It favors the commonest reply, the refusal: watch benign answers")
    p.add_argument("--opening-weight", type=POSITIVE, default=1.0, metavar="W",
                   help="weight of each reply's first token, where the refuse-or-answer decision falls, against each "
                        "later token (default 1: all alike); long benign replies otherwise drown the decision")
    p.add_argument("--balanced", action="store_true",
                   help="half of every batch refused (flagged) prompts, half answered ones, whatever the files' mix")
    p.add_argument("--init-from", metavar="DIR", help="--method prompt: start from this PEFT prompt-tuning directory "
                                                       "(e.g. a trained prompt, to fine-tune it quantization-aware)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.distill.losses import Loss
    from softfold.distill.recipe import DistillJob, run
    from softfold.distill.train import DistillConfig, LRSchedule, Method
    from softfold.inputs.control_vector import CONTROL_VECTOR_FILE

    config = DistillConfig(method=Method(args.method), loss=Loss(args.loss), **method_settings(args), steps=args.steps,
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
                     teacher_cache=Path(args.teacher_cache) if args.teacher_cache else None,
                     chat_template=chat_template_path(args))
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
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.distill.train import SteeringInit

    for method, names in METHOD_FLAGS.items():
        given = [name for name in names if getattr(args, name) is not None]
        if given and method != args.method:
            flags = " ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"--method {args.method} takes no {flags} (--method {method} does): drop it, or pass "
                            f"--method {method}")
    settings = {name: getattr(args, name) for name in METHOD_FLAGS[args.method] if getattr(args, name) is not None}
    if "lora_target_modules" in settings:
        settings["lora_target_modules"] = tuple(settings["lora_target_modules"])
    if "steering_layers" in settings:
        settings["steering_layers"] = tuple(settings["steering_layers"])
    if "steering_init" in settings:
        settings["steering_init"] = SteeringInit(settings["steering_init"])
    return settings
