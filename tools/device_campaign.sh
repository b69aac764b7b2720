#!/usr/bin/env bash
# The GPU campaign as one prepared command for a lent GPU machine (a CUDA PyTorch stack, no network, no
# install): run it from the repository root there, e.g. with the device tool
#   run(command="bash tools/device_campaign.sh 420", timeout_s=570)
# It runs `pytest -m gpu` and every registered experiment (>= 3 seeds per arm) within BUDGET seconds
# (default 420: with a machine's start-up this leaves time for a second try inside a 15-minute lease), and
# leaves in $OUT: campaign.tar.gz (results/NAME/*, weights, campaign.md; <= 16 MiB), campaign.md and the log.
# Back here: tar xzf campaign.tar.gz -C /tmp/c && cp -r /tmp/c/results/. results/ && cp -r /tmp/c/results/weights/. data/weights/
# (or `srlearn weights export`), then `srlearn report results/ --write-readme README.md`, and commit with the device stamp.
set -uo pipefail
BUDGET="${1:-420}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export SRLEARN_COMMIT="${SRLEARN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
nvidia-smi -L 2>&1 | tee "$OUT/nvidia-smi.txt"
PYTHONPATH=. timeout $((BUDGET + 90)) python3 -m srlearn campaign --device cuda --budget-seconds "$BUDGET" \
    --out /tmp/results 2>&1 | tee "$OUT/campaign.log"
rc=${PIPESTATUS[0]}
cp /tmp/results/campaign.tar.gz /tmp/results/campaign.md "$OUT/" 2>/dev/null
ls -la "$OUT"
exit "$rc"
