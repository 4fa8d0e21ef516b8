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

# Whether the latent cache $1 was made with the autoencoder $2 (sha256 of its weights); a stale cache is re-encoded.
cached_for() {
    $PY -c "import json, sys; from vidiff.bundled import find_autoencoder; from vidiff.models.autoencoders import \
vae_fingerprint; idx = json.load(open(sys.argv[1] + '/index.json')); \
sys.exit(idx['autoencoder']['fingerprint'] != vae_fingerprint(find_autoencoder(sys.argv[2])))" "$1" "$2" 2>/dev/null
}
