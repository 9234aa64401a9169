"""What an export records: the model's facts from the inputs read once (its source as given), the context the
runtime holds, each input's record, the recipe's schemes and the gate's summary."""
from pathlib import Path
from types import SimpleNamespace

import torch
from tiny import make_tokenizer

from softfold.bundle.prompt_format import derive_prompt_format
from softfold.bundle.virtual_tokens import VirtualTokens
from softfold.export.config import Folding, QuantConfig, Recipe, Target
from softfold.inputs.base_model import BaseModel, ModelSource
from softfold.inputs.provenance import BaseModelFacts
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.parity.gate import ParityReport, Thresholds
from softfold.pipeline.export_inputs import ExportInputs
from softfold.pipeline.manifest_record import manifest_of
from softfold.pipeline.options import ExportOptions


def test_the_manifest_records_the_inputs_as_they_were_read():
    tokenizer = make_tokenizer()
    config = SimpleNamespace(model_type="llama", vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                             bos_token_id=None)
    base = BaseModel(SimpleNamespace(config=config, generation_config=SimpleNamespace(eos_token_id=None)), tokenizer)
    soft_prompt = SoftPrompt(torch.zeros(4, 64), Path("prompts/p"), "ab" * 32)
    inputs = ExportInputs(ModelSource(Path("models/llama"), Path("models/llama"), None, config, None), soft_prompt,
                          None, None, None, None, BaseModelFacts("org/llama", "apache-2.0"),
                          {"harm": {"label": "harmful", "prompts": 3, "correct_rate": 1.0}}, {})
    opts = ExportOptions(Path("models/llama"), Path("prompts/p"), Path("out"), QuantConfig(Target.ONNX, Recipe.FP32),
                         folding=Folding.VIRTUAL_TOKENS, max_context=100)
    report = ParityReport("fp32", Thresholds(), [], {"rel_dlogit": 0.0}, [])
    virtual = VirtualTokens([400, 401, 402, 403])
    manifest = manifest_of(base, inputs, opts, derive_prompt_format(tokenizer), report, virtual, None)
    model = manifest["model"]
    assert (model["source"], model["context_length"], model["file"]) == ("models/llama", 104, "model.onnx")
    assert (model["base_model"], model["license"]) == ("org/llama", "apache-2.0")
    assert model["stop_strings"] == ["<|im_end|>"] and "quantization" not in manifest
    record = manifest["soft_prompt"]
    assert (record["source"], record["folding"], record["virtual_token_ids"]) == ("prompts/p", "virtual-tokens",
                                                                                  [400, 401, 402, 403])
    assert record["safety_eval"]["harm"]["prompts"] == 3 and manifest["parity"] == {"passed": True, "prompts": 0,
                                                                                    "rel_dlogit": 0.0}
