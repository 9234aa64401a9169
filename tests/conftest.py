import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from tiny import make_model_dir, make_soft_prompt_dir  # noqa: E402

PROMPTS = ("Tell me a story about the sea.", "What is the capital of France?", "How do I bake bread?")
MAX_CONTEXT = 160


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: make_model_dir(root / arch, arch) for arch in ("llama", "qwen2")}


@pytest.fixture(scope="session")
def soft_prompts(tiny_models, tmp_path_factory) -> dict[tuple[str, int], Path]:
    root = tmp_path_factory.mktemp("prompts")
    return {(arch, n): make_soft_prompt_dir(root / f"{arch}-{n}", path, n, seed=n)
            for arch, path in tiny_models.items() for n in (1, 16)}


@pytest.fixture(scope="session")
def bundles(tiny_models, soft_prompts, tmp_path_factory) -> dict[tuple[str, int], Path]:
    """One fp32 ExecuTorch bundle per (architecture, N), exported through the real pipeline."""
    from softfold.pipeline import ExportOptions, export_bundle

    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for (arch, n), prompt_dir in soft_prompts.items():
        out[(arch, n)] = root / f"{arch}-{n}"
        report = export_bundle(ExportOptions(model=tiny_models[arch], soft_prompt=prompt_dir, out=out[(arch, n)],
                                             max_context=MAX_CONTEXT, prompts=PROMPTS))
        assert report.passed, [(r.reference_text, r.runner_text) for r in report.prompts if not r.runner_match]
    return out
