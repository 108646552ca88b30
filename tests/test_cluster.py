"""The cluster recipe in deploy/cluster: each worker's TF_CONFIG, built as the job would.

No Slurm or Kubernetes here: the Slurm batch script runs with a fake ``srun`` that starts its
command once per task with that task's variables, and each pod of the Kubernetes Job runs its
manifest's own command and environment; both through ``edge_asc.train.cluster`` in a dry run
(``EDGE_ASC_CLUSTER_DRY_RUN=1``), which prints the TF_CONFIG and the training command instead
of training. shellcheck lints the script (skipped without it, failed under
``EDGE_ASC_REQUIRE_LINTERS=1`` as in CI).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_asc.train.cluster import (
    ClusterError,
    expand_hostlist,
    from_indexed_job,
    from_slurm,
    main,
    tf_config,
)
from edge_asc.train.training import worker_role

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER = REPO_ROOT / "deploy" / "cluster"
SLURM = CLUSTER / "train.slurm"
JOB = CLUSTER / "train-job.yaml"


def test_slurm_host_lists_expand_like_scontrol() -> None:
    assert expand_hostlist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    assert expand_hostlist("node1") == ["node1"]
    assert expand_hostlist("a[8-11]b") == ["a8b", "a9b", "a10b", "a11b"]
    with pytest.raises(ClusterError, match="bad range"):
        expand_hostlist("n[5-2]")


def test_tf_config_from_slurm_and_indexed_job() -> None:
    env = {"SLURM_JOB_NODELIST": "gpu[1-3]", "SLURM_PROCID": "2", "SLURM_NTASKS": "3"}
    assert from_slurm(env) == {
        "cluster": {"worker": ["gpu1:12345", "gpu2:12345", "gpu3:12345"]},
        "task": {"type": "worker", "index": 2},
    }
    with pytest.raises(ClusterError, match="one task per node"):
        from_slurm({**env, "SLURM_NTASKS": "6"})
    pod = {
        "EDGE_ASC_JOB": "j",
        "EDGE_ASC_SERVICE": "s",
        "EDGE_ASC_WORKERS": "2",
        "JOB_COMPLETION_INDEX": "1",
        "EDGE_ASC_PORT": "2222",
    }
    assert from_indexed_job(pod)["cluster"]["worker"] == ["j-0.s:2222", "j-1.s:2222"]
    with pytest.raises(ClusterError, match="outside"):
        from_indexed_job({**pod, "JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(ClusterError, match="not a port"):
        from_indexed_job({**pod, "EDGE_ASC_PORT": "http"})


def test_worker_role_follows_tf_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config(["a", "b", "c"], 2)))
    assert worker_role().index == 2 and worker_role().count == 3 and not worker_role().is_chief
    assert worker_role("default").is_chief  # TF_CONFIG matters to multiworker only
    chief = {
        "cluster": {"chief": ["a:1"], "worker": ["b:1"]},
        "task": {"type": "chief", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(chief))
    assert worker_role().is_chief and worker_role().count == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        worker_role()


def test_entrypoint_refuses_outside_a_scheduler(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOB_COMPLETION_INDEX", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Slurm" in err


def _dry_run_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "EDGE_ASC_", "JOB_COMPLETION"))
    }
    env.update(EDGE_ASC_CLUSTER_DRY_RUN="1", **extra)
    return env


def test_slurm_script_gives_each_node_its_tf_config(tmp_path: Path) -> None:
    # A fake srun: the job step's tasks, one per node, each with its SLURM_PROCID.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/usr/bin/env bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
        'for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i "$@" || exit; done\n'
    )
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for name in ("srun", "python"):
        (bin_dir / name).chmod(0o755)
    env = _dry_run_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_NODELIST="gpu[07-08]",
        SLURM_NTASKS="2",
        RUN="/shared/runs/r",
    )
    done = subprocess.run(
        ["bash", str(SLURM)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    tasks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [t["TF_CONFIG"]["task"]["index"] for t in tasks] == [0, 1]
    for task in tasks:
        assert task["TF_CONFIG"]["cluster"]["worker"] == ["gpu07:12345", "gpu08:12345"]
        command = task["command"]
        assert command[:2] == ["edge-asc", "train"]
        assert command[command.index("--strategy") + 1] == "multiworker"
        assert command[command.index("--out") + 1] == "/shared/runs/r"


def test_slurm_script_passes_shellcheck() -> None:
    path = shutil.which("shellcheck")
    if path is None:
        reason = "shellcheck not installed (apt-get install shellcheck)"
        if os.environ.get("EDGE_ASC_REQUIRE_LINTERS") == "1":
            pytest.fail(f"{reason}; EDGE_ASC_REQUIRE_LINTERS=1 requires it")
        pytest.skip(reason)
    done = subprocess.run([path, str(SLURM)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_kubernetes_job_gives_each_pod_its_tf_config() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the [test] extra")
    docs = list(yaml.safe_load_all(JOB.read_text()))
    service = next(d for d in docs if d["kind"] == "Service")
    job = next(d for d in docs if d["kind"] == "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    # The pods find each other as <job>-<i>.<service>: an Indexed Job behind a headless
    # Service that selects its pods, with one pod per worker, all at once.
    assert spec["completionMode"] == "Indexed"
    assert service["spec"]["clusterIP"] == "None"
    assert pod["subdomain"] == service["metadata"]["name"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    workers = int(env["EDGE_ASC_WORKERS"])
    assert spec["completions"] == spec["parallelism"] == workers
    assert env["EDGE_ASC_JOB"] == job["metadata"]["name"]
    assert env["EDGE_ASC_SERVICE"] == service["metadata"]["name"]
    assert int(env["EDGE_ASC_PORT"]) == service["spec"]["ports"][0]["port"]
    assert int(env["EDGE_ASC_PORT"]) == container["ports"][0]["containerPort"]

    command = [sys.executable if container["command"][0] == "python" else container["command"][0]]
    command += container["command"][1:] + container.get("args", [])
    configs = []
    for index in range(workers):
        done = subprocess.run(
            command,
            env=_dry_run_env(**env, JOB_COMPLETION_INDEX=str(index)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        configs.append(json.loads(done.stdout))
    hosts = [f"{env['EDGE_ASC_JOB']}-{i}.{env['EDGE_ASC_SERVICE']}:12345" for i in range(workers)]
    for index, config in enumerate(configs):
        assert config["TF_CONFIG"] == {
            "cluster": {"worker": hosts},
            "task": {"type": "worker", "index": index},
        }
        assert config["command"][:2] == ["edge-asc", "train"]
        assert shlex.join(config["command"]).endswith("--strategy multiworker")
