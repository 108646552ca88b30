#!/usr/bin/env bash
# Install edge-asc as a systemd service on a JetPack 6 (L4T r36, Ubuntu 22.04, Python 3.10)
# Jetson: system packages, an unprivileged `edge-asc` user in the audio and video groups, a
# virtual environment with the package and NVIDIA's Jetson build of onnxruntime-gpu, the
# config file, the unit, the health check and logrotate; then enable and start the service.
# Run it again to update: the config file is never overwritten.
#
# Usage: sudo deploy/jetson/install.sh [options] [REPO]
#   REPO            the edge-asc checkout to install (default: the one holding this script)
#   --dry-run       print every command it would run (prefixed "+ "), change nothing; runs
#                   anywhere, without root
#   --no-gpu        skip onnxruntime-gpu: TFLite on the CPU only
#   --prefix DIR    where the virtual environment goes (default /opt/edge-asc)
#   --python EXE    the interpreter for it (default python3: 3.10 on JetPack 6)
#   --ort-wheel URL another onnxruntime-gpu wheel (file or URL) than the one pinned in
#                   requirements-jetson.txt (e.g. a JetPack 6.0 build)
#   --force         install even when this is not L4T r36 / Python 3.10
#   --no-start      install and enable, but do not (re)start the service now
#   -h, --help      this text
set -euo pipefail

readonly SERVICE_USER=edge-asc
readonly DEFAULT_PREFIX=/opt/edge-asc
readonly CONF_DIR=/etc/edge-asc
readonly LOG_DIR=/var/log/edge-asc
readonly CACHE_DIR=/var/cache/edge-asc
readonly UNIT_DIR=/etc/systemd/system
readonly APT_PACKAGES=(python3-venv python3-pip libportaudio2 libsndfile1 alsa-utils logrotate)
# Where the L4T release is read from (a test may point it at a fake file).
readonly TEGRA_RELEASE=${EDGE_ASC_TEGRA_RELEASE:-/etc/nv_tegra_release}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dry_run=0
gpu=1
force=0
start=1
prefix=$DEFAULT_PREFIX
python=python3
ort_wheel=""
repo=""

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

say() {
    echo "edge-asc install: $*"
}

warn() {
    echo "edge-asc install: WARNING: $*" >&2
}

die() {
    echo "edge-asc install: ERROR: $*" >&2
    exit 1
}

# A check that failed: stop, unless --force (platform checks) or --dry-run (which goes on
# to show the rest, saying the real run would stop).
problem() {
    local forceable=$1
    shift
    if [[ "$forceable" == forceable && "$force" == 1 ]]; then
        warn "$* (going on: --force)"
    elif [[ "$dry_run" == 1 ]]; then
        warn "$* (a real run stops here; --dry-run goes on)"
    else
        die "$*"
    fi
}

# One word as the shell would need it: as it is when plain, else in single quotes.
quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-][A-Za-z0-9_@%+=:,./#-]*$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# Run a command, or with --dry-run only print it, shell-quoted, after "+ ".
run() {
    if [[ "$dry_run" == 1 ]]; then
        local word line="+"
        for word in "$@"; do
            line+=" $(quote "$word")"
        done
        printf '%s\n' "$line"
    else
        "$@"
    fi
}

# Install a file with /opt/edge-asc replaced by the prefix (unit files name the wrapper).
install_with_prefix() {
    local mode=$1 src=$2 dest=$3
    if [[ "$prefix" == "$DEFAULT_PREFIX" ]]; then
        run install -m "$mode" "$src" "$dest"
    elif [[ "$dry_run" == 1 ]]; then
        printf '+ sed %s %s | install -m %s /dev/stdin %s\n' "$(quote "s|$DEFAULT_PREFIX|$prefix|g")" \
            "$(quote "$src")" "$mode" "$(quote "$dest")"
    else
        sed "s|$DEFAULT_PREFIX|$prefix|g" "$src" | install -m "$mode" /dev/stdin "$dest"
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry_run=1; shift ;;
        --no-gpu) gpu=0; shift ;;
        --force) force=1; shift ;;
        --no-start) start=0; shift ;;
        --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --python) python=${2:?--python needs an interpreter}; shift 2 ;;
        --python=*) python=${1#*=}; shift ;;
        --ort-wheel) ort_wheel=${2:?--ort-wheel needs a wheel file or URL}; shift 2 ;;
        --ort-wheel=*) ort_wheel=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [[ -z "$repo" ]] || die "one checkout only (got $repo and $1)"
            repo=$1
            shift
            ;;
    esac
done
[[ -n "$repo" ]] || repo=$(cd "$here/../.." && pwd)
prefix=${prefix%/}
# Absolute, and plain enough to stand unquoted in a unit file's ExecStart=.
[[ "$prefix" =~ ^/[A-Za-z0-9_./-]+$ ]] ||
    die "--prefix must be an absolute path of letters, digits and _ . / - (got '$prefix')"
[[ -d "$repo" ]] && repo=$(cd "$repo" && pwd)

[[ "$dry_run" == 1 ]] && say "dry run: nothing is changed; the commands follow, prefixed '+'"

# --- Checks (all before the first change) -------------------------------------------------

if [[ ! -f "$repo/pyproject.toml" ]] || ! grep -q '^name = "edge-asc"' "$repo/pyproject.toml"; then
    die "$repo is not an edge-asc checkout (no pyproject.toml naming edge-asc)"
fi
for f in edge-asc-service edge-asc-health edge-asc.conf edge-asc.toml edge-asc.service \
    edge-asc-health.service edge-asc-health.timer edge-asc.logrotate requirements-jetson.txt; do
    [[ -f "$here/$f" ]] || die "missing $here/$f"
done

# L4T: "# R36 (release), REVISION: 4.3, GCID: ..., BOARD: ..., EABI: aarch64, DATE: ..."
l4t_major=""
l4t_revision=""
if [[ -r "$TEGRA_RELEASE" ]]; then
    release_line=$(head -n 1 "$TEGRA_RELEASE")
    if [[ "$release_line" =~ R([0-9]+)\ \(release\),\ REVISION:\ ([0-9]+)(\.[0-9]+)? ]]; then
        l4t_major=${BASH_REMATCH[1]}
        l4t_revision=${BASH_REMATCH[2]}${BASH_REMATCH[3]}
    fi
fi
if [[ -z "$l4t_major" ]]; then
    problem forceable "no L4T release in $TEGRA_RELEASE: this does not look like a Jetson" \
        "with JetPack 6 (L4T r36)"
elif [[ "$l4t_major" != 36 ]]; then
    problem forceable "this is L4T r$l4t_major.$l4t_revision; edge-asc's Jetson install is" \
        "for JetPack 6 (L4T r36)"
else
    say "L4T r$l4t_major.$l4t_revision (JetPack 6)"
    if [[ "$gpu" == 1 && "${l4t_revision%%.*}" -lt 4 ]]; then
        warn "L4T r36.$l4t_revision is JetPack 6.0 (CUDA 12.2, TensorRT 8.6); the pinned" \
            "onnxruntime-gpu is built for JetPack 6.1+ (CUDA 12.6, TensorRT 10.3): upgrade" \
            "JetPack, or use --ort-wheel with a JetPack 6.0 build, or --no-gpu"
    fi
fi

if ! command -v "$python" >/dev/null 2>&1; then
    problem not-forceable "no $python (sudo apt-get install python3)"
    py_version=unknown
else
    py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi
if [[ "$py_version" != 3.10 ]]; then
    problem forceable "$python is Python $py_version; JetPack 6 ships 3.10, which the Jetson" \
        "onnxruntime-gpu wheel (cp310) needs"
    if [[ "$gpu" == 1 && -z "$ort_wheel" ]]; then
        warn "the pinned onnxruntime-gpu wheel is cp310 and will not install on Python" \
            "$py_version: pass --no-gpu or --ort-wheel"
    fi
fi

if [[ "$gpu" == 1 ]] && ! ldconfig -p 2>/dev/null | grep -q 'libnvinfer\.so\.10'; then
    warn "TensorRT 10 (libnvinfer.so.10) not found: onnxruntime will fall back to CUDA or" \
        "the CPU. Install the JetPack components: sudo apt-get install nvidia-jetpack"
fi

if [[ "$dry_run" == 0 && "$(id -u)" != 0 ]]; then
    die "run as root (sudo $0 ...), or try --dry-run"
fi

# --- Install --------------------------------------------------------------------------------

say "system packages"
run apt-get update
run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${APT_PACKAGES[@]}"

say "user $SERVICE_USER (audio: the microphone; video: the GPU)"
if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    run usermod --append --groups audio,video "$SERVICE_USER"
else
    run useradd --system --user-group --groups audio,video --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi

say "folders"
run install -d -m 0755 "$prefix" "$prefix/models" "$CONF_DIR"
run install -d -m 0755 -o "$SERVICE_USER" -g "$SERVICE_USER" "$LOG_DIR"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$CACHE_DIR"

say "virtual environment in $prefix"
run "$python" -m venv "$prefix"
run "$prefix/bin/python" -m pip install --upgrade "pip>=23"
run "$prefix/bin/python" -m pip install "$repo"

if [[ "$gpu" == 1 ]]; then
    # NVIDIA's Jetson build (PyPI has no aarch64 onnxruntime-gpu), pinned by version and hash
    # in requirements-jetson.txt, unless --ort-wheel names another.
    if [[ -n "$ort_wheel" ]]; then
        ort_args=("$ort_wheel")
    else
        ort_args=(--requirement "$here/requirements-jetson.txt")
    fi
    say "onnxruntime-gpu for Jetson (TensorRT and CUDA execution providers): ${ort_args[*]}"
    run "$prefix/bin/python" -m pip install "${ort_args[@]}"
    # The CPU build, if a dependency pulled it in, owns the same onnxruntime/ module: remove
    # it, then lay the GPU build's files down again in case the removal took shared ones.
    run "$prefix/bin/python" -m pip uninstall --yes onnxruntime
    run "$prefix/bin/python" -m pip install --no-deps --force-reinstall "${ort_args[@]}"
    if [[ "$dry_run" == 1 ]]; then
        run "$prefix/bin/python" -c 'import onnxruntime; print(onnxruntime.get_available_providers())'
    else
        providers=$("$prefix/bin/python" -c \
            'import onnxruntime; print(" ".join(onnxruntime.get_available_providers()))' ||
            echo "none (import failed)")
        say "onnxruntime providers: $providers"
        [[ "$providers" == *TensorrtExecutionProvider* ]] ||
            warn "no TensorRT provider: edge-asc will run on CUDA or the CPU"
    fi
else
    say "--no-gpu: no onnxruntime-gpu; edge-asc runs TFLite on the CPU"
fi

say "wrapper, health check, command links"
run install -m 0755 "$here/edge-asc-service" "$here/edge-asc-health" "$prefix/bin/"
run ln -sfn "$prefix/bin/edge-asc" /usr/local/bin/edge-asc
run ln -sfn "$prefix/bin/edge-asc-health" /usr/local/bin/edge-asc-health

if [[ -e "$CONF_DIR/edge-asc.conf" ]]; then
    say "keeping $CONF_DIR/edge-asc.conf (the shipped one is $here/edge-asc.conf)"
else
    say "config $CONF_DIR/edge-asc.conf"
    run install -m 0644 "$here/edge-asc.conf" "$CONF_DIR/edge-asc.conf"
fi
if [[ -e "$CONF_DIR/edge-asc.toml" ]]; then
    say "keeping $CONF_DIR/edge-asc.toml (the shipped one is $here/edge-asc.toml)"
else
    say "listen settings $CONF_DIR/edge-asc.toml"
    run install -m 0644 "$here/edge-asc.toml" "$CONF_DIR/edge-asc.toml"
fi

say "systemd units and logrotate"
for unit in edge-asc.service edge-asc-health.service edge-asc-health.timer; do
    install_with_prefix 0644 "$here/$unit" "$UNIT_DIR/$unit"
done
run install -m 0644 "$here/edge-asc.logrotate" /etc/logrotate.d/edge-asc
run systemctl daemon-reload
run systemctl enable edge-asc.service edge-asc-health.timer
if [[ "$start" == 1 ]]; then
    run systemctl restart edge-asc.service
    run systemctl start edge-asc-health.timer
else
    say "--no-start: start it with: sudo systemctl start edge-asc edge-asc-health.timer"
fi

say "done. Pick the microphone: edge-asc devices, then a [[sources]] device in" \
    "$CONF_DIR/edge-asc.toml and sudo systemctl restart edge-asc. Watch it: journalctl -u" \
    "edge-asc -f; check it: edge-asc-health"
