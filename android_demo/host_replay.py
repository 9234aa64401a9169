"""The app's steps, replayed on the host through the same engines (issue: host conformance).

Mirrors app/src/main/java/ai/softfold/demo/: BundleManifest.read (same manifest fields),
PromptFormat.render (no Jinja), and ChatEngine.generate (same engine per backend, same stop
rule). tests/test_android_demo.py asserts its replies equal `softfold run`'s.
"""
import json
from pathlib import Path


def read_manifest(bundle: Path) -> dict:
    """BundleManifest.read: only the fields the app reads, under the same names."""
    root = json.loads((bundle / "manifest.json").read_text())
    model, soft_prompt, parity, fmt = root["model"], root["soft_prompt"], root["parity"], root["prompt_format"]
    return {
        "backend": root["backend"], "recipe": root["recipe"], "model_file": model["file"],
        "context_length": model["context_length"], "stop_ids": model["stop_ids"], "stop_strings": model["stop_strings"],
        "soft_prompt_tokens": soft_prompt["num_virtual_tokens"], "folding": soft_prompt["folding"],
        "soft_prompt_sha256": soft_prompt["sha256"], "parity_passed": parity["passed"],
        "parity_engine_match": parity.get("runner_match"), "prompt": fmt,
    }


def render(fmt: dict, turns: list[tuple[bool, str]]) -> str:
    """PromptFormat.render: preamble + each (from_user, text) turn in its role's prefix/suffix + generation prefix."""
    parts = [fmt["preamble"]]
    for from_user, text in turns:
        role = "user" if from_user else "assistant"
        parts += [fmt[f"{role}_prefix"], text, fmt[f"{role}_suffix"]]
    return "".join(parts) + fmt["generation_prefix"]


def generate(bundle: Path, manifest: dict, prompt: str, max_new_tokens: int) -> str:
    """ChatEngine.generate for the manifest's backend."""
    if manifest["backend"] == "executorch":
        return _executorch(bundle, manifest, prompt, max_new_tokens)
    if manifest["backend"] == "onnx":
        return _ort_genai(bundle, manifest, prompt, max_new_tokens)
    raise ValueError(f"backend {manifest['backend']!r} has no chat engine in the app")


def _executorch(bundle: Path, manifest: dict, prompt: str, max_new_tokens: int) -> str:
    """ExecuTorchEngine: LlmModule(model, tokenizer.json, temperature 0), seqLen = context, stop rule."""
    from executorch.extension.llm.runner import GenerationConfig

    from softfold.text_runner import load_text_runner

    runner = load_text_runner(bundle)
    runner.reset()
    text: list[str] = []
    ended = False

    def on_result(piece: str) -> None:
        nonlocal ended
        if ended:
            return
        if piece in manifest["stop_strings"]:
            ended = True
            runner.stop()
            return
        text.append(piece)
        if len(text) >= max_new_tokens:
            ended = True
            runner.stop()

    runner.generate(prompt, GenerationConfig(echo=False, seq_len=manifest["context_length"], temperature=0.0),
                    token_callback=on_result)
    return "".join(text)


def _ort_genai(bundle: Path, manifest: dict, prompt: str, max_new_tokens: int) -> str:
    """OrtGenAiEngine: Model(bundle), max_length = min(context, prompt + max new), stop ids, stream decode."""
    import onnxruntime_genai as og

    model = og.Model(str(bundle))
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=min(manifest["context_length"], len(ids) + max_new_tokens))
    generator = og.Generator(model, params)
    stream = tokenizer.create_stream()
    generator.append_tokens(ids)
    text = []
    while not generator.is_done():
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        if token in manifest["stop_ids"]:
            break
        text.append(stream.decode(token))
    return "".join(text)
