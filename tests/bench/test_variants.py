"""The bench's variants: each export of softfold's own is a command softfold's parser takes, each engine one the
worker has, each baseline's input one `softfold bench` takes."""
import shlex

import pytest

from softfold.bench.variants import INPUT_FLAGS, variants
from softfold.bench.worker import ENGINES
from softfold.cli.main import build_parser

FILL = {"py": "python", "hf": "hf/", "sp": "sp/", "out": "out/", "work": "work", "optimum": "optimum-cli",
        "adapter": "lora/", "steering": "v.gguf"}


@pytest.mark.parametrize("variant", [v for v in variants() if v.export[1:3] == ("-m", "softfold.cli")],
                         ids=lambda v: v.name)
def test_softfolds_own_exports_are_commands_its_parser_takes(variant):
    argv = [a.format(**FILL) for a in variant.export[3:]]
    args = build_parser().parse_args(argv)  # a flag softfold no longer has would exit here
    assert args.command == "export", shlex.join(argv)


def test_every_variant_runs_in_an_engine_the_worker_has_and_names_its_inputs():
    names = [v.name for v in variants()]
    assert len(names) == len(set(names))
    assert {v.engine for v in variants()} <= set(ENGINES)
    assert {i for v in variants() for i in v.inputs} <= set(INPUT_FLAGS)
    flags = {a.option_strings[-1] for a in build_parser()._subparsers._group_actions[0].choices["bench"]._actions
             if a.option_strings}
    assert set(INPUT_FLAGS.values()) <= flags
