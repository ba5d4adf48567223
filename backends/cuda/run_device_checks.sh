#!/usr/bin/env bash
# The CUDA backend's device checks in one go, for a machine with an sm_90 GPU (H100/H200):
# build ptm with nvcc into $PTM_BUILD_DIR (default build-gpu), show what the backend probes,
# then run test_cuda (every op against the CPU backend, generation on the device) and
# test_golden (every fixture on every backend present, cuda included). Prints a summary line;
# exits non-zero when the device is missing or any test fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=${PTM_BUILD_DIR:-build-gpu}
export PATH=/usr/local/cuda/bin:$PATH
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true

start=$(date +%s)
cmake -S . -B "$dir" -DPTM_WERROR=ON -DPTM_BUILD_CUDA=ON >/dev/null || exit 1
# Only what the checks need: the library, the plugins, the CLI and the two test programs.
targets="ptm-cli ptm-cpu ptm-cuda ptm-bert ptm-llama ptm-t5 test_cuda test_golden"
cmake --build "$dir" -j"$(nproc)" --target $targets >/dev/null ||
    { cmake --build "$dir" -j1 --target $targets 2>&1 | grep -B2 -A8 error | head -60; exit 1; }
echo "build: $(($(date +%s) - start)) s"
[ -e "$dir/lib/ptm/plugins/libptm-cuda.so" ] || { echo "libptm-cuda.so was not built"; exit 1; }

probe=$(PTM_PLUGIN_PATH= PTM_LOG=error "$dir/bin/ptm" plugins 2>&1 | grep -A1 '^cuda ')
echo "$probe"
case $probe in *"backend cuda: ["*) ;; *) echo "device checks: FAIL (no usable CUDA device)"; exit 1 ;; esac

# --verbose: Criterion's per-test lines (skips say why); cr_log_info lines give the errors.
rc=0
for t in test_cuda test_golden; do
    (cd "$dir/bin" && PTM_PLUGIN_PATH= PTM_LOG=error HF_HUB_OFFLINE=1 \
        timeout 400 "./$t" --jobs=1 --verbose) 2>&1 | tail -60
    st=${PIPESTATUS[0]}
    echo "$t: exit $st"
    [ "$st" -eq 0 ] || rc=1
done
echo "device checks: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
