"""`softfold calibrate-prefix`: fit the prefix K/V to a quantized recipe, for `export --prefix-kv`."""
import argparse

from softfold.calibrate.prompts import prefix_calibration_prompts
from softfold.cli.export import export_options
from softfold.cli.flags import (add_model, add_out, add_recipe, add_seed, add_soft_prompt, add_steps, nonnegative_int,
                                positive_int)
from softfold.files import check_out_file


def add_to(sub) -> None:
    p = sub.add_parser("calibrate-prefix", help="fit the prefix K/V to a quantized recipe (4-bit bundles keep the "
                                                "fp32 model's refusals)",
                       description="Fit the prefix K/V (still fp32 constants in the bundle) so that the recipe's "
                                   "arithmetic, simulated in PyTorch, follows the fp32 soft prompt's replies to "
                                   "calibration prompts; write them to --out, a safetensors file for `softfold export "
                                   "--prefix-kv` with the same recipe flags (docs/folding.md).")
    add_model(p)
    add_soft_prompt(p, required=True)
    add_recipe(p)
    add_out(p)
    add_steps(p, 300)
    p.add_argument("--prompts-per-file", type=positive_int, default=64, metavar="N",
                   help="calibration prompts from each distillation training file (default: 64)")
    p.add_argument("--opening-prompts-per-file", type=nonnegative_int, default=0, metavar="N",
                   help="also fit the reply's first token on N more prompts per training file (default: 0, off)")
    add_seed(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # calibration loads torch: when the command runs, not for --help
    from softfold.calibrate.prefix import PrefixCalibration, calibrate_prefix, is_prefix_file, save_prefix
    from softfold.inputs.read import read_inputs

    opts = export_options(args)
    paths = [p for p in (opts.model, opts.soft_prompt, opts.chat_template) if p]
    check_out_file(opts.out, paths, is_prefix_file, "--out", "prefix K/V file")
    sim = opts.quant.simulation()
    config = PrefixCalibration(steps=args.steps, prompts_per_file=args.prompts_per_file,
                               opening_prompts_per_file=args.opening_prompts_per_file, seed=args.seed)
    inputs = read_inputs(opts.model, opts.chat_template, opts.soft_prompt)  # checked in seconds, before the weights
    prefix = calibrate_prefix(inputs.model.load(), inputs.soft_prompt, sim,
                              prefix_calibration_prompts(config.prompts_per_file), config,
                              prefix_calibration_prompts(config.opening_prompts_per_file))
    save_prefix(prefix, opts.out)
    rejected = prefix.rejected_held_out_kl
    outcome = (f"calibrated {rejected:.4f}, not lower: the file holds the folded prefix" if rejected is not None
               else f"{prefix.held_out_kl_after:.4f} calibrated")
    print(f"prefix K/V: {opts.out} (held-out KL, fp32 student vs simulated {args.recipe}: "
          f"{prefix.held_out_kl_before:.4f} with the folded prefix, {outcome})")
    return 0
