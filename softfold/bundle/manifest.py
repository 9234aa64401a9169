"""manifest.json as typed dataclasses: the one definition of a bundle's manifest (docs/bundle.md).

`MANIFEST_SCHEMA`, the table `softfold verify` checks a manifest against and the Android app's reads are checked
against (tests/test_android_demo.py), is derived from these classes: a field with a default of None is optional.

Version 2 names the phone engine's parity figures `engine_*` (version 1: `runner_*`, though ONNX bundles have no
runner); `upgraded` reads a version-1 manifest as version 2. A bundle holds a soft prompt, a merged LoRA adapter,
steering vectors, or several of them: `soft_prompt`, `adapter` and `steering` are each optional.
"""
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RENAMED_IN_2 = {  # section: {version-1 name: version-2 name}
    "parity": {"runner_match": "engine_match", "runner_refusal_rate": "engine_refusal_rate"}}


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    source: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    context_length: int  # what the runtime's KV cache holds, virtual tokens included
    bos_id: int
    eos_ids: list[int]
    stop_ids: list[int]
    stop_strings: list[str]
    file: str
    base_model: str | None = None  # its hub id ("org/name"), when the model's files state it
    license: str | None = None  # the base model's license, when its files state it


@dataclass(frozen=True)
class SoftPromptInfo:
    num_virtual_tokens: int
    folding: str  # prefix-kv | virtual-tokens
    sha256: str
    source: str
    virtual_token_ids: list[int] | None = None  # folding "virtual-tokens": the ids every prompt starts with
    prefix_kv: dict | None = None  # prefix K/V calibrated to the recipe (`softfold calibrate-prefix`)
    safety_eval: dict | None = None  # the soft prompt's eval.json: {set: {label, prompts, correct_rate}}


@dataclass(frozen=True)
class AdapterInfo:
    """A PEFT LoRA adapter, merged into the weights before folding and quantization."""
    peft_type: str  # LORA
    source: str
    rank: int
    alpha: float  # the update B A is scaled by alpha / rank
    target_modules: list[str]  # as its adapter_config.json states them
    files: list[dict]  # [{"path", "sha256"}]: its adapter_config.json and adapter_model.safetensors


@dataclass(frozen=True)
class SteeringInfo:
    """Steering vectors (a llama.cpp control-vector GGUF), constants added to the output of their blocks."""
    format: str  # "llama.cpp control vector (GGUF)"
    source: str
    sha256: str  # of the file
    layers: list[int]  # llama.cpp's indices: direction.N is added after block N (0-based)
    model_hint: str | None = None  # the file's controlvector.model_hint, when it has one


@dataclass(frozen=True)
class PromptFormatInfo:
    """The chat template as strings: preamble + turns (prefix + text + suffix) + generation_prefix."""
    preamble: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prefix: str


@dataclass(frozen=True)
class ParitySummary:
    passed: bool
    prompts: int
    max_abs_dlogit: float
    rel_dlogit: float
    mean_kl: float
    top1: float
    top5_overlap: float
    mean_greedy_prefix: float
    exact_match: float
    engine_match: float | None = None  # the phone engine's greedy text equal to the reference's
    refusal_agreement: float | None = None
    reference_refusal_rate: float | None = None
    engine_refusal_rate: float | None = None


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    backend: str  # executorch | onnx | ort
    recipe: str
    model: ModelInfo
    prompt_format: PromptFormatInfo
    files: list[dict]  # [{"path", "size", "sha256"}]
    tools: dict
    parity: ParitySummary
    soft_prompt: SoftPromptInfo | None = None  # absent from a bundle of a LoRA alone
    adapter: AdapterInfo | None = None  # a LoRA merged into the weights
    steering: SteeringInfo | None = None  # steering vectors added after their blocks
    quantization: dict | None = None  # quantized recipes: the schemes' settings (group size, bits, algorithm, ...)

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        return _build(cls, upgraded(data))


def upgraded(data: dict) -> dict:
    """A manifest of any readable version as the current version's dict (the input is not modified); other
    versions are returned as they are, for `softfold verify` to name."""
    if data.get("schema_version") != 1:
        return data
    data = {**data, "schema_version": SCHEMA_VERSION}
    for section, names in RENAMED_IN_2.items():
        if isinstance(data.get(section), dict):
            data[section] = {names.get(k, k): v for k, v in data[section].items()}
    return data


def _build(kind, data: dict):
    values = {}
    for f in fields(kind):
        if f.name in data:
            nested = _dataclass_of(_plain_type(f.type))
            values[f.name] = _build(nested, data[f.name]) if nested else data[f.name]
    return kind(**values)


def _dataclass_of(annotation):
    return annotation if is_dataclass(annotation) else None


def _plain_type(annotation) -> type:
    """The runtime type a JSON value of this annotation has: list[int] -> list, str | None -> str."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def schema_of(kind) -> dict:
    """{field: type or nested schema}, a trailing "?" on the optional ones (default None)."""
    schema = {}
    for f in fields(kind):
        name = f.name + ("?" if f.default is None and f.default is not MISSING else "")
        nested = _dataclass_of(_plain_type(f.type))
        schema[name] = schema_of(nested) if nested else _plain_type(f.type)
    return schema


MANIFEST_SCHEMA: dict = schema_of(Manifest)
