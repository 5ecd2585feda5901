#!/usr/bin/env bash
# Train the bundled default models in parallel on one GPU (used on a lent H100/H200 machine).
# Usage: OUT=/some/dir BUDGET=420 bash scripts/gpu_train.sh
# Data: SENSORCODEC_DATA points at a derived data cache (python -m export.data fetch), or a
# carried pack of it. Returns model-only checkpoints (safetensors + JSON) as runs.tar.* in $OUT.
set -uo pipefail
BUDGET=${BUDGET:-420}
OUT=${OUT:-runs_out}
RUNS=${RUNS:-runs_gpu}
mkdir -p "$OUT" "$RUNS"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
IMG="--modality image --batch 16 --crop 256 --decoder-width 96 --decoder-blocks 5 --time-budget $BUDGET --no-eval --out $RUNS"
AUD="--modality audio --batch 32 --crop 16384 --decoder-width 96 --decoder-blocks 5 --time-budget $BUDGET --no-eval --out $RUNS"
declare -a JOBS=(
  "$IMG --latent 12 --lam 40 --name rgb-c12"
  "$IMG --latent 16 --lam 20 --name rgb-c16"
  "$IMG --latent 16 --lam 10 --name rgb-c16b"
  "$IMG --latent 24 --lam 10 --name rgb-c24"
  "$IMG --latent 32 --lam 5 --name rgb-c32"
  "$IMG --latent 48 --lam 2.5 --name rgb-c48"
  "$AUD --latent 4 --levels 4 --lam 6 --name audio16k-c4"
  "$AUD --latent 6 --levels 4 --lam 3 --name audio16k-c6"
)
if [ -n "${JOBS_FILE:-}" ]; then  # one job per line: extra sensor-train flags; ${IMG}/${AUD} expand
  JOBS=()
  while IFS= read -r line; do [ -n "$line" ] && JOBS+=("$(eval echo "$line")"); done < <(grep -v '^#' "$JOBS_FILE")
fi
nvidia-smi -L 2>/dev/null || true
pids=()
for j in "${JOBS[@]}"; do
  name=${j##*--name }
  python3 -m export.train $j ${EXTRA:-} > "$RUNS/$name.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || echo "job $p failed"; done
python3 - "$RUNS" "$OUT" <<'PY'
import json, sys, tarfile, pathlib
from safetensors.torch import load_file, save_file
runs, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
pack = out / "runs.tar"
with tarfile.open(pack, "w") as tar:
    for ck in sorted(runs.glob("*/checkpoint.safetensors")):
        t = {k: v for k, v in load_file(str(ck)).items() if k.startswith("model.")}
        slim = ck.with_name("model.safetensors")
        save_file(t, str(slim))
        slim.with_suffix(".json").write_text(ck.with_suffix(".json").read_text())
        tar.add(slim, f"{ck.parent.name}/checkpoint.safetensors")
        tar.add(slim.with_suffix(".json"), f"{ck.parent.name}/checkpoint.json")
    for log in sorted(runs.glob("*.log")):
        tar.add(log, f"logs/{log.name}")
print("packed", pack, pack.stat().st_size)
PY
cd "$OUT" && split -b 15M runs.tar runs.tar. && rm runs.tar && ls -la
