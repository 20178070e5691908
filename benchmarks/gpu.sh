#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one go, on a machine with CUDA and `scripts/setup`
# done (or sleeg_core importable): model (eager and CUDA graphs, fp32/fp16), node over DDS
# (fp32/fp16) and training phases, after the accuracy benchmark's GPU profile (its head is used).
#   benchmarks/gpu.sh OUT_DIR [DATA_ROOT]
# On the project's lent GPU machines (device tool): PyTorch, OpenCV, matplotlib and TensorBoard
# are installed there, rclpy and rosbags are not (the node benchmark is skipped unless they are
# carried as wheels), and ../shared does not travel: copy ../shared/data (66 MiB: weights 3,
# driving 8, anomaly 55) into a git-ignored folder of the checkout, within the 64 MiB a call may
# carry (e.g. without road_anomaly/, 22 MiB, for a model/training-only call), and pass it as
# DATA_ROOT.
set -euo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT_DIR [DATA_ROOT]}
root=${2:-${SLEEG_SHARED:-../shared}/data}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42} PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python benchmarks/accuracy.py --data-root "$root" --profile gpu --out "$out/accuracy" \
    | tee "$out/accuracy.txt"
python benchmarks/model_speed.py --data-root "$root" --compile reduce-overhead \
    --head "$out/accuracy/head.pt" \
    --out "$out/model_speed.json" | tee "$out/model_speed.txt"
python benchmarks/train_speed.py --data-root "$root" --config config/train_enet_gpu.yaml \
    --out "$out/train_speed.json" | tee "$out/train_speed.txt"
python benchmarks/train_speed.py --data-root "$root" --config config/train_enet_gpu.yaml \
    --set segmentor.compile_mode=default \
    --out "$out/train_speed_compiled.json" | tee "$out/train_speed_compiled.txt"
if python -c "import rclpy" 2>/dev/null; then
    python benchmarks/node_speed.py --data-root "$root" --device cuda \
        --head "$out/accuracy/head.pt" --out "$out/node_fp32"
    python benchmarks/node_speed.py --data-root "$root" --device cuda --half \
        --head "$out/accuracy/head.pt" --out "$out/node_fp16"
else
    echo "rclpy not importable: node benchmark skipped" | tee "$out/node_skipped.txt"
fi
