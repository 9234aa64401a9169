"""examples/: the CI workflow's softfold steps, run as written on a tiny model."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "github-actions-parity.yml"


def softfold_steps(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if step.get("run", "").startswith("softfold ")]


def run_steps(steps: list[str], cwd: Path, env: dict) -> None:
    for command in steps:
        done = subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stdout[-1000:], done.stderr[-1000:])


def test_github_workflow_gates_a_candidate_against_its_release(tiny_models, soft_prompts, tmp_path):
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["parity"]
    steps = softfold_steps(job)
    assert [s.split()[1] for s in steps] == ["export", "verify", "parity"]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Name a planet."}\n{"prompt": "How do I hurt someone?"}\n')
    # the file's commands with the job's inputs pointed at the tiny model; fp32, as a random-weight model's flat
    # distributions cannot hold the 4-bit gate's top-1 agreement
    env = {**os.environ, **job["env"], "MODEL": str(tiny_models["llama"]), "RECIPE": "fp32",
           "SOFT_PROMPT": str(soft_prompts[("llama", 16)]), "RELEASED": str(tmp_path / "released"),
           "PROMPTS": str(prompts), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # the release: what the same export step wrote earlier
    (tmp_path / "earlier").mkdir()
    run_steps(steps[:1], tmp_path / "earlier", env)
    shutil.move(tmp_path / "earlier" / "candidate", tmp_path / "released")

    (tmp_path / "ci").mkdir()
    run_steps(steps, tmp_path / "ci", env)
    for junit in ("export-parity.xml", "bundle-parity.xml"):
        assert 'failures="0"' in (tmp_path / "ci" / junit).read_text()
    assert "Bundle parity: PASSED" in (tmp_path / "ci" / "reports" / "bundle_parity.md").read_text()
