"""android_demo/: the app's manifest reads match the schema, and its steps replay to `softfold run`'s output."""
import copy
import importlib.util
import re
from pathlib import Path

import pytest

from softfold.bundle import MANIFEST_SCHEMA
from softfold.chat import generate

APP = Path(__file__).parents[1] / "android_demo"
KOTLIN = sorted((APP / "app" / "src" / "main" / "java").rglob("*.kt"))
MESSAGES = ("Tell me a story about the sea.", "What is the capital of France?")


def load_replay():
    spec = importlib.util.spec_from_file_location("host_replay", APP / "host_replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_reads(source: str) -> set[tuple[str, ...]]:
    """JSON paths the Kotlin code reads, following `val x = y.getJSONObject("k")` from `JSONObject(...)` roots."""
    paths: dict[str, tuple[str, ...]] = {m: () for m in re.findall(r"val (\w+) = JSONObject\(", source)}
    for var, parent, key in re.findall(r'val (\w+) = (\w+)\.getJSONObject\("(\w+)"\)', source):
        paths[var] = paths[parent] + (key,)
    return {paths[var] + (key,) for var, key in re.findall(r'(\w+)\.(?:get|opt|has)\w*\("(\w+)"\)', source)
            if var in paths}


def undefined(reads: set[tuple[str, ...]], schema: dict) -> list[str]:
    missing = []
    for path in sorted(reads):
        node = schema
        for key in path:
            name = key if key in node else f"{key}?"
            if not isinstance(node, dict) or name not in node:
                missing.append(".".join(path))
                break
            node = node[name]
    return missing


def app_source() -> str:
    return "\n".join(p.read_text() for p in KOTLIN)


def test_app_reads_only_fields_the_schema_defines():
    reads = manifest_reads(app_source())
    assert ("model", "stop_ids") in reads and ("prompt_format", "generation_prefix") in reads and len(reads) >= 15
    assert undefined(reads, MANIFEST_SCHEMA) == []


def test_drift_check_fails_when_a_field_is_renamed_on_one_side():
    renamed_in_app = app_source().replace('getInt("context_length")', 'getInt("context_len")')
    assert undefined(manifest_reads(renamed_in_app), MANIFEST_SCHEMA) == ["model.context_len"]
    schema = copy.deepcopy(MANIFEST_SCHEMA)
    schema["prompt_format"]["gen_prefix"] = schema["prompt_format"].pop("generation_prefix")
    assert undefined(manifest_reads(app_source()), schema) == ["prompt_format.generation_prefix"]


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_host_replay_of_the_app_equals_softfold_run(export_tiny, target):
    replay = load_replay()
    bundle = export_tiny("llama", 16, target)
    manifest = replay.read_manifest(bundle)
    assert manifest["backend"] == target and manifest["soft_prompt_tokens"] == 16 and manifest["parity_passed"]
    replies = []
    for message in MESSAGES:
        prompt = replay.render(manifest["prompt"], [(True, message)])
        replies.append(replay.generate(bundle, manifest, prompt, 24))
        assert replies[-1] == generate(bundle, message, max_new_tokens=24).text
    assert all(len(r) > 10 for r in replies), replies  # real replies, not two empty strings
