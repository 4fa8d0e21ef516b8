# Sourced by the scripts/*.sh recipes: strict mode, the repository root as working directory, the
# project's tools (override with VIDIFF=... PY=...) and 2 threads unless OMP_NUM_THREADS is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VIDIFF=${VIDIFF:-.venv/bin/vidiff}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# The synthetic moving-shapes dataset all demo models learn (deterministic, seed 0), made if missing
# or older than the caption variants (the videos come out the same; metadata.jsonl gains "captions").
ensure_shapes_data() {
    grep -qs '"captions"' data/shapes/metadata.jsonl ||
        $VIDIFF data synth shapes data/shapes --num 2000 --frames 16 --size 32 --seed 0
}
