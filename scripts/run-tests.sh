#!/bin/bash
# run-tests.sh - run every test with prove: the C unit tests
# ($BUOY_OUT/tests/test_*, built by "make MODE=asan all") and the shell
# integration tests (tests/t[0-9]*.sh).
#
#   scripts/run-tests.sh                  everything, two scripts at a time
#   scripts/run-tests.sh -v               extra arguments go to prove
#   scripts/run-tests.sh tests/t0000-lib-selftest.sh   only the tests named
#
# Exits with prove's status.  BUOY_OUT (default build-asan) picks the build.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
out=${BUOY_OUT:-build-asan}

# The unit tests get the same clean environment as the shell tests: no AWS_*
# from the caller, no EC2 metadata, no proxies, sanitizers that abort.  This
# also exports BUOY_OUT (made absolute), BUOY and TOOLS.
TEST_LIB_ENV_ONLY=1 . tests/lib/test-lib.sh || exit 1

args=() named=()
for arg in "$@"; do
    if [ -e "$arg" ]; then named+=("$arg"); else args+=("$arg"); fi
done

tests=("${named[@]}")
if [ ${#named[@]} -eq 0 ]; then
    # prove runs a script through its #! line, so only the binaries need +x.
    for t in "$out"/tests/test_*; do
        [ -f "$t" ] && [ -x "$t" ] && tests+=("$t")
    done
    for t in tests/t[0-9]*.sh; do
        [ -f "$t" ] && tests+=("$t")
    done
    if [ ! -d "$out/tests" ]; then
        echo "run-tests.sh: no C unit tests in $out/tests (run make MODE=asan all first)" >&2
    fi
fi
if [ ${#tests[@]} -eq 0 ]; then
    echo "run-tests.sh: no tests found" >&2
    exit 1
fi

exec prove --timer -j2 "${args[@]}" "${tests[@]}"
