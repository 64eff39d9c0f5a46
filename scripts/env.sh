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
