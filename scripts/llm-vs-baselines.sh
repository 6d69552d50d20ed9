#!/usr/bin/env bash
# The LLM operator against the built-in baselines, in one command: the same search, the
# same evaluation budget and seeds, one reference point for every hypervolume.
#
# For each seed it runs `random`, `mutate+crossover` and `llm_mutate` (SmolLM2-135M on
# 127.0.0.1 through scripts/local-llm.sh, decoding grammar on), then `uhc report` over
# all the stores: one line per run with its hypervolume at the smallest evaluation count
# any run reached (an equal budget) and at the end, and the LLM's validity and novelty.
#
# Usage: scripts/llm-vs-baselines.sh [search file]   (default examples/digits_search.uh)
# Env:   UHC_BIN   uhc binary (default target/release/uhc, built if missing: training is
#                  the cost of the baselines)
#        SEEDS     the seeds (default "0 1 2")
#        LLM_BUDGET  LLM-proposed evaluations after the first population (default 24);
#                  the baselines get the same total budget
#        OUT       where the stores and the report go (default a temporary folder)
#        REFERENCE_ENERGY  the reference point's energy, e.g. 5nJ (default: the search's
#                  `constraint energy <= …`)
#        and any variable of scripts/local-llm.sh (LLM_MAX_TOKENS, LLM_EXTRA_ARGS, ...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEARCH_FILE="${1:-examples/digits_search.uh}"
UHC_BIN="${UHC_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/uhc}"
SEEDS="${SEEDS:-0 1 2}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/uhc-llm-vs-baselines.XXXXXX")}"
mkdir -p "$OUT"

if [[ ! -x "$UHC_BIN" ]]; then
    cargo build --release --bin uhc
fi
POPULATION="$(sed -n 's/^[[:space:]]*population[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$SEARCH_FILE" | head -n 1)"
BUDGET="$(( ${POPULATION:-20} + ${LLM_BUDGET:-24} ))"
echo "search $SEARCH_FILE, budget $BUDGET evaluations per run, seeds $SEEDS, stores in $OUT" >&2

stores=()
for seed in $SEEDS; do
    for ops in random=1 mutate=0.7,crossover=0.3; do
        db="$OUT/${ops%%=*}-seed$seed.sqlite"
        [[ "$ops" == mutate* ]] && db="$OUT/mutate+crossover-seed$seed.sqlite"
        "$UHC_BIN" search "$SEARCH_FILE" --budget "$BUDGET" --operators "$ops" --seed "$seed" \
            --db "$db" >/dev/null 2>"$db.log" || { cat "$db.log" >&2; exit 1; }
        stores+=("$db")
    done
    db="$OUT/llm_mutate-seed$seed.sqlite"
    UHC_BIN="$UHC_BIN" LLM_DB="$db" LLM_SEED="$seed" LLM_BUDGET="${LLM_BUDGET:-24}" \
        LLM_MAX_TOKENS="${LLM_MAX_TOKENS:-400000}" LLM_SEARCH_TIMEOUT="${LLM_SEARCH_TIMEOUT:-60m}" \
        scripts/local-llm.sh "$SEARCH_FILE" >"$db.log" 2>&1 || { cat "$db.log" >&2; exit 1; }
    stores+=("$db")
done
# One reference point for every run: the search's own energy bound when it declares one
# (no feasible candidate lies beyond it, and no run's figures depend on another's), else
# `uhc report` derives one from these runs and says so.
REFERENCE="${REFERENCE_ENERGY:-$(sed -n 's/^[[:space:]]*constraint[[:space:]]*energy[[:space:]]*<=[[:space:]]*\([0-9.eE+-]*\)[[:space:]]*\([a-zA-Z]*J\).*/\1\2/p' "$SEARCH_FILE" | head -n 1)}"
"$UHC_BIN" report "${stores[@]}" --out "$OUT/report" ${REFERENCE:+--reference-energy "$REFERENCE"}
