"""Calibration feeds for the ONNX decoder: each prompt's tokens and mask, and an empty cache of the graph's shape."""
from softfold.calibrate.feeds import onnx_prefill_feeds


def test_each_prompt_gets_its_tokens_and_an_empty_cache(export_tiny):
    feeds = onnx_prefill_feeds(export_tiny("llama", 16, "onnx") / "model.onnx", [[1, 2, 3], [4]])
    assert [f["input_ids"].tolist() for f in feeds] == [[[1, 2, 3]], [[4]]]
    assert feeds[1]["attention_mask"].tolist() == [[1]]
    caches = [v for k, v in feeds[0].items() if k.startswith("past_key_values.")]
    assert caches and all(c.shape[0] == 1 and not c.any() for c in caches)
