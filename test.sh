#!/usr/bin/env bash
# Runs every test of the repository on a fresh machine: installs what is missing, builds, tests (and the package smoke
# test, tests/PackageSmoke/run.sh), and ends with
# one line "tests: N passed, N failed, N skipped" summed over all test projects.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET SDK (dotnet) is required; see global.json for the version." >&2
  exit 1
fi

# The Redis store is tested against a real redis-server (Debian package 'redis-server').
if ! command -v redis-server >/dev/null 2>&1; then
  echo "Installing redis-server (apt-get)..."
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results="$(pwd)/TestResults"
rm -rf "$results"

dotnet build Polly.PriorityRouting.sln -c Release -nologo -clp:ErrorsOnly

# The test projects of the solution; tests/PackageSmoke is a consumer of the packages, run below by its own script.
test_projects() { for project in tests/*/*.csproj; do [[ "$project" == tests/PackageSmoke/* ]] || echo "$project"; done; }

status=0
# One run per test project, each with its own results file (a shared run names files by the second and can collide).
for project in $(test_projects); do
  name=$(basename "$project" .csproj)
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=${name}.trx" --logger "console;verbosity=minimal" \
    --results-directory "$results" -- RunConfiguration.TreatNoTestsAsError=true || status=$?
done

# Package smoke test: pack, build a consumer of the packages, run a failover and an exhausted answer on net10.0 and
# net8.0. Its checks count as tests; a failure before any check ran counts as one failed test.
smoke_passed=0; smoke_failed=0; smoke_start=$SECONDS
smoke_output=$(tests/PackageSmoke/run.sh 2>&1) || status=$?
echo "$smoke_output"
smoke_line=$(grep '^package smoke: ' <<<"$smoke_output" | tail -1 || true)
if [ -n "$smoke_line" ]; then
  smoke_passed=$(sed -n 's/^package smoke: \([0-9]*\) passed.*/\1/p' <<<"$smoke_line")
  smoke_failed=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$smoke_line")
else
  smoke_failed=1
fi
echo "package smoke took $((SECONDS - smoke_start)) s"

passed=$smoke_passed; failed=$smoke_failed; skipped=0; files=0; projects=0
for project in $(test_projects); do projects=$((projects + 1)); done
counter() { local v; v=$(echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"); echo "${v:-0}"; }
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  passed=$((passed + $(counter passed)))
  failed=$((failed + $(counter failed) + $(counter error) + $(counter timeout) + $(counter aborted)))
  skipped=$((skipped + $(counter total) - $(counter executed) + $(counter notExecuted)))
done

if [ "$files" -ne "$projects" ]; then
  echo "error: ${projects} test projects but ${files} result files: a test run crashed before writing results." >&2
  status=1
fi

echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then status=1; fi
exit "$status"
