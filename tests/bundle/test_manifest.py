"""The manifest's one definition: dataclasses, the schema derived from them, and manifests read back typed."""
import json

from softfold.bundle.integrity import verify, write_manifest
from softfold.bundle.manifest import (MANIFEST_SCHEMA, AdapterInfo, Manifest, ParitySummary, PromptFormatInfo,
                                      SteeringInfo, schema_of, upgraded)

MANIFEST = {
    "schema_version": 2, "backend": "onnx", "recipe": "int4",
    "model": {"architecture": "llama", "source": "m.gguf", "vocab_size": 10, "hidden_size": 8, "num_layers": 2,
              "context_length": 64, "bos_id": 1, "eos_ids": [2], "stop_ids": [2], "stop_strings": ["</s>"],
              "file": "model.onnx", "license": "mit"},
    "soft_prompt": {"num_virtual_tokens": 4, "folding": "prefix-kv", "sha256": "ab", "source": "p/"},
    "prompt_format": {"preamble": "", "user_prefix": "<u>", "user_suffix": "</u>", "assistant_prefix": "<a>",
                      "assistant_suffix": "</a>", "generation_prefix": "<a>"},
    "files": [{"path": "model.onnx", "size": 3, "sha256": "cd"}], "tools": {"softfold": "0.1.0"},
    "parity": {"passed": True, "prompts": 10, "max_abs_dlogit": 0.1, "rel_dlogit": 0.01, "mean_kl": 0.02, "top1": 0.9,
               "top5_overlap": 0.9, "mean_greedy_prefix": 12.0, "exact_match": 0.5, "refusal_agreement": 1.0},
}


def test_schema_marks_optional_fields_and_nests_dataclasses():
    assert MANIFEST_SCHEMA["schema_version"] is int and MANIFEST_SCHEMA["files"] is list
    assert MANIFEST_SCHEMA["quantization?"] is dict and "quantization" not in MANIFEST_SCHEMA
    assert MANIFEST_SCHEMA["model"]["eos_ids"] is list and MANIFEST_SCHEMA["model"]["base_model?"] is str
    assert MANIFEST_SCHEMA["prompt_format"] == schema_of(PromptFormatInfo) == {
        name: str for name in ("preamble", "user_prefix", "user_suffix", "assistant_prefix", "assistant_suffix",
                               "generation_prefix")}
    assert MANIFEST_SCHEMA["parity"]["passed"] is bool and MANIFEST_SCHEMA["parity"]["engine_match?"] is float


def test_manifest_reads_back_typed_with_absent_optionals_as_none():
    manifest = Manifest.from_json(MANIFEST)
    assert isinstance(manifest.parity, ParitySummary) and isinstance(manifest.prompt_format, PromptFormatInfo)
    assert manifest.model.license == "mit" and manifest.model.base_model is None
    assert manifest.parity.refusal_agreement == 1.0 and manifest.parity.engine_match is None
    assert manifest.soft_prompt.virtual_token_ids is None and manifest.quantization is None


def test_a_bundle_of_a_merged_lora_alone_has_an_adapter_and_no_soft_prompt(tmp_path):
    assert MANIFEST_SCHEMA["adapter?"]["target_modules"] is list and MANIFEST_SCHEMA["soft_prompt?"]["sha256"] is str
    lora = {"peft_type": "LORA", "source": "l/", "rank": 8, "alpha": 16.0, "target_modules": ["q_proj", "v_proj"],
            "files": [{"path": "adapter_model.safetensors", "sha256": "ef"}]}
    data = {**{k: v for k, v in MANIFEST.items() if k != "soft_prompt"}, "adapter": lora}
    manifest = Manifest.from_json(data)
    assert manifest.soft_prompt is None and isinstance(manifest.adapter, AdapterInfo) and manifest.adapter.rank == 8
    (tmp_path / "model.onnx").write_bytes(b"abc")
    write_manifest(tmp_path, {k: v for k, v in data.items() if k not in ("files", "schema_version")})
    assert verify(tmp_path) == []


def test_a_bundle_of_steering_vectors_alone_has_a_steering_section(tmp_path):
    assert MANIFEST_SCHEMA["steering?"] == {"format": str, "source": str, "sha256": str, "layers": list,
                                            "model_hint?": str}
    steering = {"format": "llama.cpp control vector (GGUF)", "source": "cv.gguf", "sha256": "ef", "layers": [10, 11]}
    data = {**{k: v for k, v in MANIFEST.items() if k != "soft_prompt"}, "steering": steering}
    manifest = Manifest.from_json(data)
    assert manifest.soft_prompt is None and manifest.adapter is None and isinstance(manifest.steering, SteeringInfo)
    assert manifest.steering.layers == [10, 11] and manifest.steering.model_hint is None
    (tmp_path / "model.onnx").write_bytes(b"abc")
    write_manifest(tmp_path, {k: v for k, v in data.items() if k not in ("files", "schema_version")})
    assert verify(tmp_path) == [] and json.loads((tmp_path / "manifest.json").read_text())["schema_version"] == 2


def test_a_version_1_manifest_reads_as_version_2():
    """Version 1 named the phone engine's figures runner_*; bundles exported then still read and verify."""
    v1 = {**MANIFEST, "schema_version": 1,
          "parity": {**MANIFEST["parity"], "runner_match": 0.9, "runner_refusal_rate": 0.5}}
    v2 = upgraded(v1)
    assert v2["schema_version"] == 2 and "runner_match" not in v2["parity"] and v1["schema_version"] == 1
    assert Manifest.from_json(v1).parity.engine_match == 0.9 and Manifest.from_json(v1).parity.engine_refusal_rate == 0.5
    assert upgraded({**MANIFEST, "schema_version": 7})["schema_version"] == 7


def test_verify_reads_version_1_bundles_and_names_unknown_versions(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"abc")
    base = {k: v for k, v in MANIFEST.items() if k not in ("files", "schema_version")}
    write_manifest(tmp_path, base)
    assert verify(tmp_path) == []
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    v1 = {**manifest, "schema_version": 1, "parity": {**manifest["parity"], "runner_match": 1.0}}
    (tmp_path / "manifest.json").write_text(json.dumps(v1))
    assert verify(tmp_path) == []
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 3}))
    assert verify(tmp_path) == ["schema_version is 3; this softfold reads 1 and 2"]
