"""TF_CONFIG for each worker of a multi-worker job, from what the scheduler tells the process.

``edge-asc train --strategy multiworker`` needs, in every worker process, a ``TF_CONFIG``
naming all workers and this one's index. Schedulers say the same in their own words: Slurm
in ``SLURM_JOB_NODELIST`` and ``SLURM_PROCID``, a Kubernetes Indexed Job in
``JOB_COMPLETION_INDEX`` plus the stable pod names of its headless Service. This module turns
either into ``TF_CONFIG`` and runs the training command with it, so the batch script and the
Job manifest in ``deploy/cluster/`` stay one line each and the logic is tested here::

    python -m edge_asc.train.cluster run -- edge-asc train ... --strategy multiworker
    python -m edge_asc.train.cluster print      # the TF_CONFIG this process would get

With ``EDGE_ASC_CLUSTER_DRY_RUN=1``, ``run`` prints the TF_CONFIG and the command instead of
running it (how the tests check the deployment files). No TensorFlow is imported here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from edge_asc.errors import EdgeAscError

DEFAULT_PORT = 12345
"""Port every worker listens on for TF's gRPC (``EDGE_ASC_PORT`` overrides it)."""


class ClusterError(EdgeAscError):
    """The scheduler's variables do not describe a usable job; one line."""


def tf_config(hosts: Sequence[str], index: int, port: int = DEFAULT_PORT) -> dict[str, Any]:
    """The TF_CONFIG of worker ``index`` among ``hosts`` (worker 0 is the chief).

    Parameters
    ----------
    hosts : sequence of str
        One host name per worker, in task order.
    index : int
        This worker's position in ``hosts``.
    port : int
        Port of TF's gRPC server on every host.

    Returns
    -------
    dict
        ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``
    """
    if not hosts:
        raise ClusterError("no worker hosts")
    if not 0 <= index < len(hosts):
        raise ClusterError(f"worker index {index} is outside 0..{len(hosts) - 1}")
    workers = [f"{host}:{port}" for host in hosts]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a Slurm host list such as ``gpu[01-03,07],login1`` (what ``scontrol show
    hostnames`` prints, without needing Slurm's tools)."""
    hosts: list[str] = []
    for prefix, ranges, suffix in re.findall(
        r"([^,\[\]]*)(?:\[([^\]]*)\])?([^,\[\]]*),?", hostlist
    ):
        if not prefix and not ranges:
            continue
        if not ranges:
            hosts.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            if not high:
                hosts.append(f"{prefix}{low}{suffix}")
                continue
            if not (low.isdigit() and high.isdigit()) or int(high) < int(low):
                raise ClusterError(f"bad range {part!r} in host list {hostlist!r}")
            hosts += [f"{prefix}{i:0{len(low)}d}{suffix}" for i in range(int(low), int(high) + 1)]
    return hosts


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("EDGE_ASC_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ClusterError(f"EDGE_ASC_PORT={raw!r} is not a port")
    return int(raw)


def from_slurm(env: Mapping[str, str]) -> dict[str, Any]:
    """TF_CONFIG of this Slurm task: one worker per node (``--ntasks-per-node=1``), each
    using all of its node's GPUs, task ``SLURM_PROCID`` on ``SLURM_JOB_NODELIST``."""
    try:
        hosts = expand_hostlist(env["SLURM_JOB_NODELIST"])
        index = int(env["SLURM_PROCID"])
    except (KeyError, ValueError) as exc:
        raise ClusterError(f"not inside a Slurm job step ({exc})") from None
    tasks = int(env.get("SLURM_NTASKS", len(hosts)))
    if tasks != len(hosts):
        raise ClusterError(
            f"{tasks} Slurm tasks on {len(hosts)} nodes: run one task per node "
            "(--ntasks-per-node=1); each worker uses all GPUs of its node"
        )
    return tf_config(hosts, index, _port(env))


def from_indexed_job(env: Mapping[str, str]) -> dict[str, Any]:
    """TF_CONFIG of this pod of a Kubernetes Indexed Job behind a headless Service.

    Pod ``i`` of Job ``EDGE_ASC_JOB`` is reachable as ``EDGE_ASC_JOB-i.EDGE_ASC_SERVICE``
    (the Job's ``subdomain`` is the Service); ``EDGE_ASC_WORKERS`` is the Job's
    ``completions`` and ``JOB_COMPLETION_INDEX`` this pod's index.
    """
    try:
        job, service = env["EDGE_ASC_JOB"], env["EDGE_ASC_SERVICE"]
        workers = int(env["EDGE_ASC_WORKERS"])
        index = int(env["JOB_COMPLETION_INDEX"])
    except (KeyError, ValueError) as exc:
        raise ClusterError(f"not a pod of an edge-asc Indexed Job ({exc})") from None
    hosts = [f"{job}-{i}.{service}" for i in range(workers)]
    return tf_config(hosts, index, _port(env))


def detect(env: Mapping[str, str]) -> dict[str, Any]:
    """TF_CONFIG from whichever scheduler this process runs under."""
    if "JOB_COMPLETION_INDEX" in env:
        return from_indexed_job(env)
    if "SLURM_PROCID" in env:
        return from_slurm(env)
    raise ClusterError("neither a Slurm task (SLURM_PROCID) nor an Indexed Job pod")


def main(argv: Sequence[str] | None = None) -> int:
    """``print`` the TF_CONFIG, or ``run -- COMMAND...`` with it (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] not in ("print", "run"):
            raise ClusterError("usage: python -m edge_asc.train.cluster print | run -- COMMAND")
        config = json.dumps(detect(os.environ))
        if args[0] == "print":
            print(config)
            return 0
        command = args[2:] if args[1:2] == ["--"] else args[1:]
        if not command:
            raise ClusterError("run needs a command after --")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("EDGE_ASC_CLUSTER_DRY_RUN") == "1":
        print(json.dumps({"TF_CONFIG": json.loads(config), "command": command}))
        return 0
    os.environ["TF_CONFIG"] = config
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
