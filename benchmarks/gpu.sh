#!/usr/bin/env bash
# The GPU check: the CUDA tests, the half-precision drift, model speed (ENet + head, eager and
# CUDA graphs, fp32 and fp16, batch 1 and 4, 1024×512 and 2048×1024), training speed
# (config/train_enet_gpu.yaml at batch 8 on 512×1024 crops, one head branch) and the accuracy
# protocol's GPU-profile training (benchmarks/accuracy.py --profile gpu --train-only: the CPU
# recipe, 2000 steps of batch 4). It needs CUDA, PyTorch, torchvision, OpenCV, onnxruntime,
# PyYAML, pytest and TensorBoard; no step needs ROS or ../shared. Each step has its own timeout;
# the results are at most 8 files in OUT_DIR.
#
#   benchmarks/gpu.sh prepare DATA_DIR [HEAD] [--subset N]   copy what the steps read into DATA_DIR
#   benchmarks/gpu.sh OUT_DIR DATA_DIR                       run the steps (on the GPU machine)
#
# `prepare` copies from ../shared/data ($SLEEG_SHARED/data), so that DATA_DIR alone can go to the
# GPU machine:
#   weights/enet_cityscapes/enet.pth   1.6 MB, the frozen ENet
#   cityscapes_train/images/           the Cityscapes-train frames of the accuracy training: all
#                                      2,641 (161 MB), or with --subset N (or SUBSET=N) every N-th
#                                      in sorted order, as accuracy.py --train-every N picks them
#                                      (N = 5: 529 frames, ~32 MB, a quick run whose head scores a
#                                      few points lower, docs/accuracy.md); the run step trains on
#                                      every frame it finds there
#   driving/                           8.3 MB: half-drift and training-phase frames
#   head.pt                            HEAD, a trained ENet head with a calibrated threshold (e.g.
#                                      models/enet_cityscapes_sleeg.pt): model speed uses its
#                                      configuration (without: a default head), the drift its
#                                      threshold (without: the drift step is skipped)
# Example, DATA_DIR under the git-ignored out/:
#   source scripts/env.sh; benchmarks/gpu.sh prepare out/gpu_data models/enet_cityscapes_sleeg.pt
#   benchmarks/gpu.sh out/gpu_result out/gpu_data
#
# STEPS picks steps (default "tests drift speed train accuracy"), e.g. STEPS=accuracy for a rerun.
# BUDGET_S caps the whole run (default 570 s): at most tests 200 s, drift 90 s, speed 260 s (8
# compiles; its JSON keeps the rows done), train 90 s; the accuracy training, last, gets what is
# left (its head and metrics are kept even when it runs out of time) and is skipped with under
# 120 s (a rerun alone: STEPS=accuracy, BUDGET_S as needed). Files in OUT_DIR: summary.json (GPU,
# per step exit code / seconds / timed out, and the headline figures), log.txt (every step's
# output), tests.xml (JUnit), half_drift.json, model_speed.json, train_speed.json, acc_head.pt and
# acc_metrics.csv (of the accuracy training; its checkpoints and TensorBoard files are not kept).
# Exit status 1 when a step failed or timed out.
set -euo pipefail
py=${PYTHON:-python3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ ${1:-} == prepare ]]; then
    usage="usage: benchmarks/gpu.sh prepare DATA_DIR [HEAD] [--subset N]"
    data=${2:?$usage}
    head="" subset=${SUBSET:-1}
    shift 2
    while (($#)); do
        case $1 in
            --subset) subset=${2:?$usage}; shift 2 ;;
            *) head=$1; shift ;;
        esac
    done
    [[ $subset =~ ^[1-9][0-9]*$ ]] || { echo "--subset $subset: a whole number >= 1" >&2; exit 2; }
    shared=${SLEEG_SHARED:-$repo/../shared}/data
    mkdir -p "$data/weights/enet_cityscapes" "$data/cityscapes_train/images" "$data/driving"
    cp "$shared/weights/enet_cityscapes/enet.pth" "$data/weights/enet_cityscapes/"
    cp "$shared"/driving/* "$data/driving/"
    # every N-th frame as accuracy.py's --train-every N picks them (list_images order)
    "$py" -c 'import shutil, sys
from sleeg_core.data.images import list_images
for path in list_images(sys.argv[1])[:: int(sys.argv[3])]:
    shutil.copy(path, sys.argv[2])' \
        "$shared/cityscapes_train/images" "$data/cityscapes_train/images" "$subset"
    if [[ -n $head ]]; then cp "$head" "$data/head.pt"; fi
    du -sh "$data"
    exit 0
fi

mkdir -p "${1:?usage: benchmarks/gpu.sh OUT_DIR DATA_DIR (or: prepare DATA_DIR [HEAD])}"
out=$(cd "$1" && pwd)
data=$(cd "${2:?usage: benchmarks/gpu.sh OUT_DIR DATA_DIR}" && pwd)
cd "$repo"
steps=" ${STEPS:-tests drift speed train accuracy} "
deadline=$((SECONDS + ${BUDGET_S:-570}))
work=$(mktemp -d)  # what must not come back (accuracy's checkpoints, TensorBoard, ...)
trap 'rm -rf "$work"' EXIT
: >"$work/steps.tsv"
log=$out/log.txt
: >"$log"
head_args=()
if [[ -f $data/head.pt ]]; then head_args=(--head "$data/head.pt"); fi

# step NAME SECONDS COMMAND...: run it (if in STEPS) under `timeout`, capped by the deadline
step() {
    local name=$1 limit=$2 rc=0 start=$SECONDS
    shift 2
    [[ $steps == *" $name "* ]] || return 0
    limit=$((limit < deadline - SECONDS ? limit : deadline - SECONDS))
    if ((limit < ${MIN_S:-30})); then
        echo "=== $name: skipped, ${limit}s left of the budget" | tee -a "$log"
        printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$work/steps.tsv"
        return 0
    fi
    echo "=== $name (timeout ${limit}s): $*" | tee -a "$log"
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$log" || rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start))s" | tee -a "$log"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" >>"$work/steps.tsv"
}

compile_test=test_compiled_model_matches_eager_and_keeps_each_calls_outputs
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    >"$work/gpu.txt" 2>/dev/null || true
# the CUDA variants (CUDA graphs fp32/fp16, fp16 conversion, GPU rendering, pinned memory) and the
# inference tests around them; the CPU compile cases are CI's
step tests 200 "$py" -m pytest -q -rs -p no:cacheprovider --junitxml="$out/tests.xml" \
    --deselect "test/core/test_compile.py::${compile_test}[cpu-default-fp32]" \
    --deselect "test/core/test_compile.py::${compile_test}[cpu-default-fp32-scales]" \
    test/core/test_compile.py test/core/test_inference.py test/core/test_tta.py \
    test/core/test_metrics.py::test_streaming_valid_mask_and_device \
    test/core/test_patches.py::test_renders_on_the_gpu_like_on_the_cpu \
    test/core/test_patches.py::test_rendering_on_the_gpu_with_a_cpu_generator_never_waits_for_the_gpu \
    test/core/test_train.py::test_a_training_step_on_the_gpu_never_waits_for_the_gpu \
    test/core/test_segmentors.py::test_to_batch_on_cuda_goes_through_pinned_memory
if [[ -f $data/head.pt ]]; then
    step drift 90 "$py" benchmarks/half_drift.py --data-root "$data" --head "$data/head.pt" \
        --device cuda --out "$out/half_drift.json"
elif [[ $steps == *" drift "* ]]; then
    printf 'drift\tskipped\t0\t0\n' >>"$work/steps.tsv"
    echo "=== drift: skipped, no $data/head.pt (see prepare)" | tee -a "$log"
fi
MIN_S=60 step speed 260 "$py" benchmarks/model_speed.py --data-root "$data" --segmentors enet \
    --device cuda --batches 1,4 --compile reduce-overhead --repeat 20 "${head_args[@]}" \
    --out "$out/model_speed.json"
# training throughput at batch 8 on 512x1024 crops, the size its target (>= 50 it/s) is set for
# (the profile: batch 4, 256x512), with the paper's one-branch head (the profile has two)
step train 90 "$py" benchmarks/train_speed.py --data-root "$data" \
    --config config/train_enet_gpu.yaml --set batch_size=8 --set "data.augment.crop=[512,1024]" \
    --set "head.branches=[]" --out "$out/train_speed.json"
MIN_S=120 step accuracy 600 "$py" benchmarks/accuracy.py --segmentor enet --profile gpu \
    --train-only --train-every 1 --data-root "$data" --out "$work/acc_enet"
for f in head.pt metrics.csv; do
    if [[ -f $work/acc_enet/$f ]]; then cp "$work/acc_enet/$f" "$out/acc_$f"; fi
done

"$py" - "$out" "$work" <<'EOF' | tee -a "$log"
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

out, work = Path(sys.argv[1]), Path(sys.argv[2])
gpu = work / "gpu.txt"
summary = {"gpu": gpu.read_text().strip() if gpu.exists() else None, "steps": {}}
for line in (work / "steps.tsv").read_text().splitlines():
    name, rc, seconds, limit = line.split("\t")
    summary["steps"][name] = {
        "exit": rc,
        "seconds": int(seconds),
        "timeout_s": int(limit),
        "timed_out": rc in ("124", "137"),
    }
if (out / "tests.xml").exists():
    suite = ET.parse(out / "tests.xml").getroot().find("testsuite")
    summary["tests"] = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
if (out / "half_drift.json").exists():
    summary["half_drift"] = json.loads((out / "half_drift.json").read_text())["summary"]
if (out / "model_speed.json").exists():
    summary["model_speed_ms"] = {
        f"{r['size']} b{r['batch']} {r['device']}": round(r["full_ms"], 3)
        for r in json.loads((out / "model_speed.json").read_text())["rows"]
    }
if (out / "train_speed.json").exists():
    summary["train_speed"] = json.loads((out / "train_speed.json").read_text())
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
sys.exit(any(s["exit"] not in ("0", "skipped") for s in summary["steps"].values()))
EOF
