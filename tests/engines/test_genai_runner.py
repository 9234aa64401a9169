"""onnxruntime-genai's greedy loop, the engine under ORT GenAI on Android: exactly N tokens when asked for a fixed
length (the bench), the phases' times in order."""
import onnxruntime_genai as og

from softfold.engines.genai_runner import greedy


def test_a_fixed_length_run_generates_exactly_n_tokens_in_order(export_tiny):
    model = og.Model(str(export_tiny("llama", 16, "onnx")))
    ids = og.Tokenizer(model).encode("<|im_start|>user\nTell me a story about the sea.<|im_end|>\n")
    run = greedy(model, list(ids), 6, exact_length=True)
    assert len(run.ids) == 6 and run.prompt_tokens == len(ids)
    assert run.start <= run.prefill_done <= run.first_token <= run.end
    assert greedy(model, list(ids), 6).ids == run.ids[:len(greedy(model, list(ids), 6).ids)]  # greedy: the same path
