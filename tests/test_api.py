"""The Python API's own checks (its exports run in tests/test_smollm.py, its bundles in tests/test_cli.py)."""
import pytest

import softfold


@pytest.mark.parametrize("kwargs, needle", [
    ({"recipe": "int3"}, "recipe='int3' is not one of fp32"),
    ({"target": "tflite"}, "target='tflite' is not one of executorch, onnx, ort"),
    ({"colour": "red"}, "fold() has no option colour"),
])
def test_export_refuses_unknown_choices_and_options(tmp_path, kwargs, needle):
    with pytest.raises(softfold.UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        softfold.fold(tmp_path / "prompt", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_import_softfold_stays_light():
    """`import softfold` loads no torch (the CLI sets its thread count first); the API loads on first use."""
    import subprocess
    import sys

    code = "import softfold, sys; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    assert softfold.Bundle is softfold.api.Bundle and softfold.fold is softfold.api.fold


def test_bundle_compare_checks_its_thresholds(tmp_path):
    from softfold.parity.against import BundleThresholds

    with pytest.raises(softfold.UserError, match=r"--min-agreement must be within \[0, 1\], got 1.5"):
        BundleThresholds(min_decision_agreement=1.5)
    with pytest.raises(softfold.UserError, match="--max-kl must be a finite number >= 0 nats, got -1"):
        BundleThresholds(max_mean_kl=-1)
    for bad in (float("nan"), float("inf")):  # NaN: every comparison false, a gate that cannot fail
        with pytest.raises(softfold.UserError, match=f"--max-kl must be a finite number >= 0 nats, got {bad}"):
            BundleThresholds(max_mean_kl=bad)
        with pytest.raises(softfold.UserError, match=rf"--min-agreement must be within \[0, 1\], got {bad}"):
            BundleThresholds(min_decision_agreement=bad)
