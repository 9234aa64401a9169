"""`softfold sensitivity`: rank layers by how much their 4-bit quantization moves the safety behavior."""
import argparse
import json
from pathlib import Path

from softfold.calibrate.prompts import calibration_set
from softfold.cli.flags import (add_json, add_model, add_soft_prompt, add_weight_grid, model_path, optional_path,
                                positive_int)
from softfold.cli.verdicts import check_writable_file


def add_to(sub) -> None:
    p = sub.add_parser("sensitivity", help="rank layers by how much their quantization moves the safety behavior",
                       description="Quantize one layer at a time (simulated weights + int8 activations, soft prompt "
                                   "in context) and compare with fp32 on calibration prompts: first-token KL and "
                                   "refusal flips. Suggests --keep-8bit layers and checks the suggestion.")
    add_model(p)
    add_soft_prompt(p, required=True)
    add_weight_grid(p)
    p.add_argument("--prompts-per-class", type=positive_int, default=16, metavar="N",
                   help="harmful and benign calibration prompts each (default: 16)")
    add_json(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # the simulation loads torch: when the command runs, not for --help
    from softfold.calibrate.layer_sensitivity import sensitivity
    from softfold.inputs.read import read_inputs
    from softfold.reference.reference import Reference

    check_writable_file(args.json, "--json")
    inputs = read_inputs(model_path(args), optional_path(args.chat_template), args.soft_prompt)  # before the weights
    harmful, benign = calibration_set(args.prompts_per_class)
    report = sensitivity(Reference(inputs.model.load(), inputs.soft_prompt), harmful + benign, args.weight_bits or 4,
                         args.group_size)
    print(report.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0
