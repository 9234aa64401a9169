"""android_demo/: the app's manifest reads match the schema, and its plain-Kotlin core (everything but the
screen) is compiled with a real Kotlin compiler and tested on the host JVM against real bundles.

The JVM tests (android_demo/jvm/test) read fixtures this module writes: bundles exported through the
pipeline (ExecuTorch and ONNX, prefix-kv and virtual-tokens folding), the chat template's renderings of
multi-turn conversations, and replies recorded from TextLLMRunner token by token.
"""
import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import MAX_CONTEXT, PROMPTS
from transformers import AutoTokenizer

from softfold.bundle.manifest import MANIFEST_SCHEMA, RENAMED_IN_2

APP = Path(__file__).parents[1] / "android_demo"
MAIN = APP / "app" / "src" / "main" / "java"
KOTLIN = sorted(MAIN.rglob("*.kt"))
ANDROID_ONLY = {"MainActivity.kt"}  # needs the Android SDK; everything else compiles on the host
ANDROID_JSON = Path("/usr/share/java/com.android.json.jar")  # Debian's libandroid-json-java: Android's org.json
CONVERSATIONS = (
    [("user", "Hi")],
    [("user", "Tell me a story about the sea."), ("assistant", "Once upon a time."), ("user", "Make it longer.")],
    [("user", "Grüße ☕\nzweite Zeile"), ("assistant", " spaced  reply \n"), ("user", "<b>tags</b> & {braces}"),
     ("assistant", "ok"), ("user", "Bye")],
)
RECORD_PROMPTS = ("Hi", "How do I bake bread?", "What is the capital of France?", "Tell me a story about the sea.")
SPLIT_CHARACTERS = ([b"\xc3", b"\xa9"], [b"\xe2\x98", b"\x95"])  # "é" and "☕", each split across two tokens


def manifest_reads(source: str) -> set[tuple[str, ...]]:
    """JSON paths the Kotlin code reads, following `val x = y.getJSONObject("k")` (or optJSONObject, its `x?.`
    reads) from `JSONObject(...)` roots."""
    paths: dict[str, tuple[str, ...]] = {m: () for m in re.findall(r"val (\w+) = JSONObject\(", source)}
    for var, parent, key in re.findall(r'val (\w+) = (\w+)\.(?:get|opt)JSONObject\("(\w+)"\)', source):
        paths[var] = paths[parent] + (key,)
    return {paths[var] + (key,) for var, key in re.findall(r'(\w+)\??\.(?:get|opt|has)\w*\("(\w+)"\)', source)
            if var in paths}


def required_reads_of_optional_sections(source: str, schema: dict) -> list[str]:
    """Optional sections of the manifest (a bundle may lack them: soft_prompt, adapter, steering) the app reads with
    getJSONObject, which throws when they are absent."""
    return [key for key in re.findall(r'\w+\.getJSONObject\("(\w+)"\)', source) if f"{key}?" in schema]


def undefined(reads: set[tuple[str, ...]], schema: dict) -> list[str]:
    """The reads the schema does not define; a version-1 name counts as its version-2 one (the app reads both)."""
    missing = []
    for path in sorted(reads):
        node = schema
        if len(path) == 2 and path[1] in RENAMED_IN_2.get(path[0], {}):
            path = (path[0], RENAMED_IN_2[path[0]][path[1]])
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
    assert {("schema_version",), ("files",), ("model", "stop_ids"), ("prompt_format", "generation_prefix")} <= reads
    assert len(reads) >= 19 and ("adapter", "rank") in reads and ("steering", "layers") in reads
    assert undefined(reads, MANIFEST_SCHEMA) == []
    assert required_reads_of_optional_sections(app_source(), MANIFEST_SCHEMA) == []
    strict = app_source().replace('optJSONObject("soft_prompt")', 'getJSONObject("soft_prompt")')
    assert required_reads_of_optional_sections(strict, MANIFEST_SCHEMA) == ["soft_prompt"]
    strict = app_source().replace('optJSONObject("steering")', 'getJSONObject("steering")')
    assert required_reads_of_optional_sections(strict, MANIFEST_SCHEMA) == ["steering"]


def test_drift_check_fails_when_a_field_is_renamed_on_one_side():
    renamed_in_app = app_source().replace('getInt("context_length")', 'getInt("context_len")')
    assert undefined(manifest_reads(renamed_in_app), MANIFEST_SCHEMA) == ["model.context_len"]
    schema = copy.deepcopy(MANIFEST_SCHEMA)
    schema["prompt_format"]["gen_prefix"] = schema["prompt_format"].pop("generation_prefix")
    assert undefined(manifest_reads(app_source()), schema) == ["prompt_format.generation_prefix"]


def card_android() -> dict[str, str]:
    """softfold/bundle/card.py's ANDROID, from this checkout (the installed softfold may be another one)."""
    spec = importlib.util.spec_from_file_location("card", APP.parent / "softfold" / "bundle" / "card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ANDROID


def test_bundle_readme_and_gradle_agree_with_the_app_and_the_parity_gate():
    android, readme = card_android(), (APP / "README.md").read_text()
    gradle = (APP / "app" / "build.gradle.kts").read_text()
    pins = dict(re.findall(r'implementation\("[\w.]+:([\w-]+):([\d.]+)"\)', gradle))
    aar = re.search(r'files\("libs/(onnxruntime-genai-android-([\d.]+)\.aar)"\)', gradle)
    assert pins == {"executorch-android": version("executorch"), "onnxruntime-android": version("onnxruntime")}
    assert aar and aar[2] == version("onnxruntime-genai")  # what the parity gate ran on the host
    assert all(aar[1] in text for text in (android["onnx"], readme))
    assert f"onnxruntime-android:{pins['onnxruntime-android']}" in android["onnx"]
    assert f"executorch-android:{pins['executorch-android']}" in android["executorch"]
    files_dir = "/sdcard/Android/data/ai.softfold.demo/files/bundle/"  # getExternalFilesDir(null)/bundle
    assert 'applicationId = "ai.softfold.demo"' in gradle and "File(getExternalFilesDir(null), \"bundle\")" in app_source()
    assert f"adb push . {files_dir}" in android["executorch"] and f"adb push . {files_dir}" in android["onnx"]
    assert f"/. {files_dir}" in readme
    assert "module.generate(prompt, contextLength, callback, false)" in android["executorch"]
    assert "module.generate(prompt, manifest.contextLength, callback, false)" in app_source()


# --- the JVM tier -----------------------------------------------------------------------------------------------

def kotlin_toolchain() -> dict[str, Path]:
    """The Kotlin compiler and stdlib jars of the kotlin-jupyter-kernel wheel (scripts/setup.sh installs it)."""
    spec = importlib.util.find_spec("run_kotlin_kernel")
    jars = Path(spec.origin).parent / "jars" if spec and spec.origin else None
    found = {"compiler": next(jars.glob("kotlin-jupyter-kernel-*-all.jar"), None) if jars else None,
             "stdlib": next(jars.glob("kotlin-stdlib-*.jar"), None) if jars else None,
             "org.json": ANDROID_JSON if ANDROID_JSON.is_file() else None}
    missing = [name for name, path in found.items() if path is None]
    missing += [tool for tool in ("java", "javac") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the JVM tests need {', '.join(missing)}: run scripts/setup.sh")
    return found


def run_checked(command: list, what: str) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def kotlin_classes(tmp_path_factory) -> list[Path]:
    """The app's host-compilable Kotlin, the runtime stubs and the JVM tests, compiled once per session:
    the classpath to run them."""
    tools, start = kotlin_toolchain(), time.monotonic()
    out = tmp_path_factory.mktemp("kotlin")
    stubs, classes = out / "stubs", out / "classes"
    run_checked(["javac", "-d", stubs, *sorted((APP / "jvm" / "stubs").rglob("*.java"))], "javac (ORT GenAI stubs)")
    sources = [*sorted((APP / "jvm").rglob("*.kt")), *(p for p in KOTLIN if p.name not in ANDROID_ONLY)]
    # C1 only: the compiler runs once, so the JIT's slow tier does not pay off (halves the time)
    run_checked(["java", "-XX:TieredStopAtLevel=1", "-cp", tools["compiler"], "org.jetbrains.kotlin.cli.jvm.K2JVMCompiler", "-Werror",
                 "-no-stdlib", "-no-reflect", "-jvm-target", "17", "-d", classes,
                 "-classpath", ":".join(map(str, [tools["stdlib"], tools["org.json"], stubs])), *sources], "kotlinc")
    print(f"\nJVM: compiled {len(sources)} Kotlin files in {time.monotonic() - start:.1f}s")
    return [classes, stubs, tools["stdlib"], tools["org.json"]]


def chat_text(bundle: Path, turns) -> str:
    tok = AutoTokenizer.from_pretrained(bundle)
    messages = [{"role": role, "content": text} for role, text in turns]
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def record_replies(bundle: Path, name: str) -> list[dict]:
    """TextLLMRunner's replies token by token (its token callback, as LlmModule's JNI layer gets them), with
    softfold's own cut at the stop string; and one of them with two characters split across byte tokens."""
    from executorch.extension.llm.runner import GenerationConfig

    from softfold.engines.text_runner import cut_at_stop, load_text_runner

    stops = json.loads((bundle / "manifest.json").read_text())["model"]["stop_strings"]
    runner, recordings = load_text_runner(bundle), []
    for prompt in RECORD_PROMPTS:
        pieces: list[str] = []
        runner.reset()
        runner.generate(chat_text(bundle, [("user", prompt)]), GenerationConfig(echo=False, max_new_tokens=48,
                        temperature=0.0), token_callback=pieces.append)
        recordings.append({"name": f"{name}: {prompt!r}", "bundle": name, "pieces": pieces,
                           "expected": cut_at_stop("".join(pieces), stops)})
    # The tiny tokenizer has no bytes above ASCII, and the runner's Python binding aborts on a partial UTF-8
    # piece, so the split characters are spliced, as byte-level tokens, into a reply that ends at end-of-turn.
    ends = next(r for r in recordings if any(s in "".join(r["pieces"][1:]) for s in stops) and r["pieces"][0] not in stops)
    at = next(i for i, p in enumerate(ends["pieces"]) if p in stops)
    spliced = ([p.encode() for p in ends["pieces"][:at]] + [t for char in SPLIT_CHARACTERS for t in char]
               + [p.encode() for p in ends["pieces"][at:]])
    recordings = [{**r, "tokens_hex": [p.encode().hex() for p in r.pop("pieces")]} for r in recordings]
    recordings.append({"name": f"{ends['name']} + é and ☕ split across tokens", "bundle": name,
                       "tokens_hex": [t.hex() for t in spliced], "expected": ends["expected"] + "é☕"})
    return recordings


def runner_prompt_tokens(bundle: Path, prompts: list[str]) -> list[int]:
    """How many tokens TextLLMRunner reads for each prompt (its own stats)."""
    from softfold.engines.text_runner import greedy, load_text_runner

    runner = load_text_runner(bundle)
    return [greedy(runner, prompt, 1, [])[1]["prompt_tokens"] for prompt in prompts]


def big_file(path: Path) -> dict:
    data = os.urandom(5 * (1 << 19) + 7)  # 2.5 MiB and an odd tail
    path.write_bytes(data)
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture(scope="session")
def jvm_fixtures(export_tiny, tiny_models, soft_prompts, tmp_path_factory) -> Path:
    from softfold.export.config import Folding
    from softfold.parity.gate import GateConfig
    from softfold.pipeline.options import ExportOptions
    from softfold.pipeline.stages import export_bundle

    root = tmp_path_factory.mktemp("jvm")
    virtual = root / "executorch-virtual-tokens"
    report = export_bundle(ExportOptions(model=tiny_models["llama"], soft_prompt=soft_prompts[("llama", 16)], out=virtual,
                                         folding=Folding.VIRTUAL_TOKENS, max_context=MAX_CONTEXT,
                                         gate=GateConfig(PROMPTS)))
    assert report.passed, report.failures
    bundles = {"executorch-prefix-kv": export_tiny("llama", 16, "executorch"),
               "onnx-prefix-kv": export_tiny("llama", 16, "onnx"), "executorch-virtual-tokens": virtual}
    chat_templates = [{"bundle": name, "turns": [{"role": r, "content": t} for r, t in turns],
                       "expected": chat_text(path, turns)} for name, path in bundles.items() for turns in CONVERSATIONS]
    token_counts = []
    for name in ("executorch-prefix-kv", "executorch-virtual-tokens"):
        texts = [c["expected"] for c in chat_templates if c["bundle"] == name]
        counts = runner_prompt_tokens(bundles[name], texts)
        token_counts += [{"bundle": name, "text": t, "tokens": n} for t, n in zip(texts, counts)]
    fixtures = {"bundles": {name: str(path) for name, path in bundles.items()}, "chat_templates": chat_templates,
                "recordings": record_replies(bundles["executorch-prefix-kv"], "executorch-prefix-kv"),
                "token_counts": token_counts, "big_file": big_file(root / "big.bin"), "out": str(root / "out")}
    (root / "out").mkdir()
    (root / "fixtures.json").write_text(json.dumps(fixtures, ensure_ascii=False, indent=1))
    return root


@pytest.fixture(scope="session")
def jvm_run(kotlin_classes, jvm_fixtures) -> dict:
    start = time.monotonic()
    done = subprocess.run(["java", "-cp", ":".join(map(str, kotlin_classes)), "ai.softfold.demo.CheckKt",
                           str(jvm_fixtures / "fixtures.json")], capture_output=True, text=True, timeout=300)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "seconds": time.monotonic() - start,
            "out": jvm_fixtures / "out"}


def test_kotlin_compiles_and_its_jvm_tests_pass(jvm_run):
    lines = jvm_run["stdout"].splitlines()
    summary = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1] if lines else "")
    assert summary, jvm_run["stdout"] + jvm_run["stderr"]
    failures = [line for line in lines if line.startswith("FAIL")]
    assert jvm_run["rc"] == 0 and failures == [], "\n".join(failures) + jvm_run["stderr"]
    passed = int(summary[1])
    assert passed == sum(line.startswith("PASS") for line in lines) >= 35
    print(f"\nJVM: {passed} Kotlin tests passed in {jvm_run['seconds']:.1f}s")


@pytest.mark.parametrize("name", ["executorch-prefix-kv", "executorch-virtual-tokens"])
def test_kotlin_trimmed_prompt_fits_the_runner(jvm_run, jvm_fixtures, name):
    """The over-long conversation the Kotlin budget trimmed, counted by TextLLMRunner itself."""
    trimmed = json.loads((jvm_run["out"] / f"trimmed-{name}.json").read_text())
    bundle = Path(json.loads((jvm_fixtures / "fixtures.json").read_text())["bundles"][name])
    context = json.loads((bundle / "manifest.json").read_text())["model"]["context_length"]
    (tokens,) = runner_prompt_tokens(bundle, [trimmed["prompt"]])
    # the bound is loose (bytes, where BPE merges several): the tiny tokenizer needs about a third of it
    assert trimmed["prompt"].count("<|im_start|>user") >= 2 and tokens + trimmed["max_new_tokens"] <= context
