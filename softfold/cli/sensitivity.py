"""`softfold sensitivity`: rank layers by how much their 4-bit quantization moves the safety behavior."""
import argparse
import json
from pathlib import Path

from softfold.cli.flags import (add_model_flag, add_soft_prompt_flag, chat_template_path, check_writable_file,
                                model_path, positive_int)


def add_to(sub) -> None:
    p = sub.add_parser("sensitivity", help="rank layers by how much their quantization moves the safety behavior",
                       description="Quantize one layer at a time (simulated 4-bit weights + int8 activations, soft "
                                   "prompt in context) and compare with fp32 on harmful and benign calibration "
                                   "prompts: first-token KL and refusal-decision flips. Suggests --keep-8bit layers "
                                   "for the 4-bit recipes and checks the suggestion.")
    add_model_flag(p)
    add_soft_prompt_flag(p)
    p.add_argument("--weight-bits", type=int, default=4, choices=[2, 4, 8])
    p.add_argument("--group-size", type=int, default=32, choices=[0, 16, 32, 64, 128, 256])
    p.add_argument("--prompts-per-class", type=positive_int, default=16, help="harmful and benign calibration prompts each")
    p.add_argument("--json", help="also write the report as JSON here")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.calibrate.prompts import calibration_set
    from softfold.calibrate.layer_sensitivity import sensitivity
    from softfold.inputs.base_model import check_chat_template_input, load_base, read_config
    from softfold.inputs.soft_prompt import load_soft_prompt
    from softfold.reference.reference import Reference

    check_writable_file(args.json, "--json")
    hidden_size = read_config(model_path(args)).hidden_size  # the inputs checked in seconds, before the model loads
    check_chat_template_input(model_path(args), chat_template_path(args))
    load_soft_prompt(Path(args.soft_prompt), hidden_size)
    base = load_base(model_path(args), chat_template_path(args))
    harmful, benign = calibration_set(args.prompts_per_class)
    report = sensitivity(Reference(base, Path(args.soft_prompt)), harmful + benign, args.weight_bits, args.group_size)
    print(report.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0
