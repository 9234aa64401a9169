import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from tiny import make_model_dir, make_soft_prompt_dir  # noqa: E402

MODEL_FIXTURES = {"tiny_models", "soft_prompts", "export_tiny", "bundles"}

# the longest tests (SmolLM2 exports, the bench's fresh processes) start first, so that with `-n 2` they do not
# run alone at the end
FIRST = ("test_smollm.py", "test_bench.py")


def pytest_addoption(parser) -> None:
    parser.addoption("--integration", action="store_true",
                     help="also run the integration tier: every test that builds or loads a model (plain pytest runs "
                          "the unit tier alone)")


def pytest_collection_modifyitems(config, items) -> None:
    """The integration tier: every test that builds or loads a model (directly or through a fixture), marked so; it
    runs only with --integration, so plain `pytest` runs the unit tier alone, in seconds."""
    items.sort(key=lambda item: item.path.name not in FIRST)
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
    if not config.getoption("--integration"):
        integration = [item for item in items if item.get_closest_marker("integration")]
        items[:] = [item for item in items if not item.get_closest_marker("integration")]
        config.hook.pytest_deselected(items=integration)


def pytest_terminal_summary(terminalreporter, config) -> None:
    deselected = len(terminalreporter.stats.get("deselected", []))
    if deselected and not config.getoption("--integration"):
        terminalreporter.write_line(f"the unit tier: {deselected} deselected (integration and -m/-k); --integration "
                                    "runs both tiers")


NEW_ARCHS = ("qwen3", "phi3", "llama3_rope", "gemma3")  # tested with N = 16 through both runtimes, one export each
PROMPTS = ("Tell me a story about the sea.", "What is the capital of France?", "How do I bake bread?")
MAX_CONTEXT = 160


def cli_exports(root: Path, *flags: str):
    """export(target) -> a bundle exported once per target through `softfold export FLAGS --target TARGET` into
    root/TARGET (a module fixture's cache)."""
    from softfold.cli.main import main

    cache: dict[str, Path] = {}

    def export(target: str) -> Path:
        if target not in cache:
            out = root / target
            argv = ["export", *flags, "--target", target, "--out", str(out), "--max-context", str(MAX_CONTEXT)]
            assert main(argv) == 0
            cache[target] = out
        return cache[target]

    return export


def passed_fp32_gate(bundle: Path) -> dict:
    """The bundle's manifest, once its fp32 gate is checked: passed, logits within 1e-4 (relative) of the reference's,
    every top-1 token and greedy reply the reference's, through the phone engine too; its checksums intact."""

    from softfold.bundle.integrity import read_manifest, verify

    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["metrics"]["rel_dlogit"] <= 1e-4 and parity["metrics"]["top1"] == 1.0
    assert parity["metrics"]["engine_match"] == 1.0 and parity["metrics"]["exact_match"] == 1.0
    assert verify(bundle) == []
    return read_manifest(bundle)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: make_model_dir(root / arch, arch) for arch in ("llama", "qwen2", *NEW_ARCHS)}


@pytest.fixture(scope="session")
def soft_prompts(tiny_models, tmp_path_factory) -> dict[tuple[str, int], Path]:
    root = tmp_path_factory.mktemp("prompts")
    return {(arch, n): make_soft_prompt_dir(root / f"{arch}-{n}", path, n, seed=n)
            for arch, path in tiny_models.items() for n in (1, 16)}


@pytest.fixture(scope="session")
def export_tiny(tiny_models, soft_prompts, tmp_path_factory):
    """export_tiny(arch, n, target) -> bundle dir, exported once per session through the real pipeline."""
    from softfold.export.config import QuantConfig, Target
    from softfold.parity.gate import GateConfig
    from softfold.pipeline.options import ExportOptions
    from softfold.pipeline.stages import export_bundle

    root = tmp_path_factory.mktemp("bundles")
    cache: dict[tuple[str, int, str], Path] = {}

    def export(arch: str, n: int, target: str = "executorch") -> Path:
        key = (arch, n, target)
        if key not in cache:
            out = root / "-".join(map(str, key))
            report = export_bundle(ExportOptions(model=tiny_models[arch], soft_prompt=soft_prompts[(arch, n)], out=out,
                                                 quant=QuantConfig(Target(target)), max_context=MAX_CONTEXT,
                                                 gate=GateConfig(PROMPTS)))
            assert report.passed, (report.failures,
                                   [(r.reference_text, r.engine_text) for r in report.prompts if not r.engine_match])
            cache[key] = out
        return cache[key]

    return export


@pytest.fixture(scope="session")
def bundles(export_tiny) -> dict[tuple[str, int], Path]:
    """One fp32 ExecuTorch bundle per (architecture, N)."""
    return {(arch, n): export_tiny(arch, n) for arch in ("llama", "qwen2") for n in (1, 16)}


def eval_json(model_dir, flags: list[str], tmp_path, capsys) -> dict:
    """`softfold eval FLAGS` on PROMPTS (the first harmful, the rest benign), greedy 6 tokens, its --json read back."""
    from softfold.cli.main import main

    harmful, benign, out = tmp_path / "harm.txt", tmp_path / "good.txt", tmp_path / "eval.json"
    harmful.write_text(PROMPTS[0] + "\n")
    benign.write_text("\n".join(PROMPTS[1:]) + "\n")
    assert main(["eval", "--model", str(model_dir), *flags, "--harmful", str(harmful), "--benign", str(benign),
                 "--max-new-tokens", "6", "--json", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def peft_reference(model_dir, prompt_dir):
    """The PEFT model (base + soft prompt) and the tokenizer: the reference, as PEFT itself computes it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, prompt_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


def chat(tok, prompt: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)


def runner_greedy(runner, text: str, n: int) -> str:
    """TextLLMRunner's greedy reply through its token callback, cut at the stop string as an app does."""
    from executorch.extension.llm.runner import GenerationConfig

    from softfold.engines.text_runner import cut_at_stop

    pieces = []
    runner.generate(text, GenerationConfig(echo=False, max_new_tokens=n, temperature=0.0), token_callback=pieces.append)
    return cut_at_stop("".join(pieces), ["<|im_end|>"])


def run_session(session, ids: list[int], split: int):
    """An ONNX session's logits at every position: prefill ids[:split], then the rest one token at a time with the KV
    cache."""
    import numpy as np

    from softfold.engines.engine import empty_cache

    past = empty_cache(session)
    rows, done = [], 0
    for chunk in [ids[:split]] + [[t] for t in ids[split:]]:
        done += len(chunk)
        feed = {"input_ids": np.array([chunk]), "attention_mask": np.ones((1, done), np.int64)}
        out = session.run(None, {**feed, **past})
        rows.append(out[0][0])
        past = {name: value for name, value in zip(past, out[1:])}
    return np.concatenate(rows)


def assert_user_error(capsys, argv, *needles) -> str:
    """`softfold ARGV` exits 2 with one line naming every needle; that line."""
    from softfold.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("softfold: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def schema_sample(schema: dict) -> dict:
    """A value of every required field of a manifest schema, of its type."""
    sample = {str: "x", int: 1, float: 1.0, bool: True, list: [], dict: {}}
    return {key: schema_sample(kind) if isinstance(kind, dict) else sample[kind] for key, kind in schema.items()
            if not key.endswith("?")}
