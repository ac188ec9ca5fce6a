#!/usr/bin/env bash
# Runs every test of the repository on a fresh machine: installs what is missing, builds, tests, and ends with
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

status=0
dotnet test Polly.PriorityRouting.sln -c Release --no-build -nologo \
  --logger "trx" --logger "console;verbosity=minimal" \
  --results-directory "$results" -- RunConfiguration.TreatNoTestsAsError=true || status=$?

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  total=$(get total); executed=$(get executed); p=$(get passed); f=$(get failed)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + ${total:-0} - ${executed:-0} + $(get notExecuted)))
done

if [ "$files" -eq 0 ]; then
  echo "error: no test results were produced." >&2
  status=1
fi

echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then status=1; fi
exit "$status"
