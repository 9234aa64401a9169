"""The bench's plot: a bar per timed variant and metric, softfold's own in blue, the guard's bars clipped."""
import re

from softfold.bench.plot import BAR_W, svg


def test_bars_are_proportional_and_the_guard_is_clipped():
    results = [{"name": "softfold-pte-fp32", "run": {"ttft_ms": 50.0, "decode_tok_s": 100.0}},
               {"name": "naive-pte-fp32", "run": {"ttft_ms": 100.0, "decode_tok_s": 50.0}},
               {"name": "guard-llama-guard-3-1b-shape-8da4w", "run": {"ttft_ms": 5000.0, "decode_tok_s": None}},
               {"name": "optimum-executorch-fp32", "run": {}, "skipped": "no optimum-cli"}]
    image = svg({"results": results, "machine": {"cpu": "cpu", "cores": 2}, "new_tokens": 8})
    bars = re.findall(r'width="([0-9.]+)"[^>]*data-variant="([^"]+)" data-ttft', image)
    widths = {name: float(w) for w, name in bars}
    assert widths["naive-pte-fp32"] == BAR_W and widths["softfold-pte-fp32"] == BAR_W / 2
    assert widths["guard-llama-guard-3-1b-shape-8da4w"] == BAR_W + 24  # clipped, its value written beside it
    assert "optimum-executorch-fp32" not in image and 'fill="#2b6cb0"' in image
