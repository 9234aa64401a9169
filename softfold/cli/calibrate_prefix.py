"""`softfold calibrate-prefix`: fit the prefix K/V to a quantized recipe, for `export --prefix-kv`."""
import argparse

from softfold.cli.flags import (add_model_flag, add_recipe_arguments, add_soft_prompt_flag, export_options,
                                nonnegative_int, positive_int)


def add_to(sub) -> None:
    p = sub.add_parser("calibrate-prefix", help="fit the prefix K/V to a quantized recipe (4-bit bundles keep the "
                                                "fp32 model's refusals)",
                       description="A quantized model reads the fp32 prefix K/V differently from the fp32 model. "
                                   "This fits the prefix K/V (still fp32 constants in the bundle) so that the "
                                   "recipe's arithmetic, simulated in PyTorch, matches the fp32 soft prompt's "
                                   "next-token distributions over its replies to calibration prompts (the "
                                   "distillation training files). Pass the same recipe flags as to `softfold "
                                   "export`, then `softfold export ... --prefix-kv FILE`. The parity gate still "
                                   "compares with the fp32 PEFT reference.")
    add_model_flag(p)
    add_soft_prompt_flag(p)
    add_recipe_arguments(p)
    p.add_argument("--out", required=True, help="safetensors file to write (a new file, or one calibrate-prefix wrote)")
    p.add_argument("--steps", type=positive_int, default=300, help="Adam steps (default: 300)")
    p.add_argument("--prompts-per-file", type=positive_int, default=64,
                   help="calibration prompts from each distillation training file (default: 64)")
    p.add_argument("--opening-prompts-per-file", type=nonnegative_int, default=0,
                   help="also match the first reply token (where the refuse-or-answer decision falls) on this many "
                        "prompts per training file (default: 0, off)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.files import check_out_file
    from softfold.calibrate.prefix import PrefixCalibration, calibrate_prefix, is_prefix_file, save_prefix
    from softfold.calibrate.prompts import prefix_calibration_prompts
    from softfold.inputs.base_model import check_chat_template_input, load_base, read_config
    from softfold.inputs.soft_prompt import load_soft_prompt

    opts = export_options(args)
    inputs = [p for p in (opts.model, opts.soft_prompt, opts.chat_template) if p]
    check_out_file(opts.out, inputs, is_prefix_file, "--out", "prefix K/V file")
    sim = opts.quant.simulation()
    config = PrefixCalibration(steps=args.steps, prompts_per_file=args.prompts_per_file,
                               opening_prompts_per_file=args.opening_prompts_per_file, seed=args.seed)
    hidden_size = read_config(opts.model).hidden_size  # the inputs checked in seconds, before the model loads
    check_chat_template_input(opts.model, opts.chat_template)
    soft_prompt = load_soft_prompt(opts.soft_prompt, hidden_size)
    base = load_base(opts.model, opts.chat_template)
    prefix = calibrate_prefix(base, soft_prompt, sim, prefix_calibration_prompts(config.prompts_per_file), config,
                              prefix_calibration_prompts(config.opening_prompts_per_file))
    save_prefix(prefix, opts.out)
    rejected = prefix.rejected_held_out_kl
    outcome = (f"calibrated {rejected:.4f}, not lower: the file holds the folded prefix" if rejected is not None
               else f"{prefix.held_out_kl_after:.4f} calibrated")
    print(f"prefix K/V: {opts.out} (held-out KL, fp32 student vs simulated {args.recipe}: "
          f"{prefix.held_out_kl_before:.4f} with the folded prefix, {outcome})")
    return 0
