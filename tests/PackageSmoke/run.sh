#!/usr/bin/env bash
# Package smoke test, run by ./test.sh after the solution's Release build: packs Polly.PriorityRouting and
# Polly.PriorityRouting.Redis into a fresh folder, under a version no NuGet cache has seen (so a stale package of the
# same version can never be used), builds this consumer against the *package*, and runs one failover and one exhausted
# answer on net10.0 and, self-contained with a .NET 8 runtime pack from NuGet, on net8.0.
# The last line is "package smoke: N passed, N failed"; the exit code is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages_root="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
work=$(mktemp -d)
prefix=$(dotnet msbuild src/Polly.PriorityRouting/Polly.PriorityRouting.csproj -getProperty:VersionPrefix)
version="${prefix}-smoke.$(date -u +%Y%m%d%H%M%S).$$"
cleanup() {
  rm -rf "$work" "$packages_root/polly.priorityrouting/$version" "$packages_root/polly.priorityrouting.redis/$version"
}
trap cleanup EXIT

passed=0; failed=0
summary() { echo "package smoke: ${passed} passed, ${failed} failed"; }

for project in src/Polly.PriorityRouting/Polly.PriorityRouting.csproj src/Polly.PriorityRouting.Redis/Polly.PriorityRouting.Redis.csproj; do
  if ! dotnet pack "$project" -c Release --no-build -nologo -p:Version="$version" -o "$work/packages" -clp:ErrorsOnly >/dev/null; then
    echo "FAIL pack: $project"; failed=$((failed + 1)); summary; exit 1
  fi
done
ls "$work/packages"

if ! dotnet build tests/PackageSmoke/PackageSmoke.csproj -c Release -nologo -clp:ErrorsOnly \
     -p:SmokeVersion="$version" -p:RestoreAdditionalProjectSources="$work/packages" -p:BaseOutputPath="$work/bin/" >/dev/null; then
  # Show why, then count the failure.
  dotnet build tests/PackageSmoke/PackageSmoke.csproj -c Release -nologo -clp:ErrorsOnly \
    -p:SmokeVersion="$version" -p:RestoreAdditionalProjectSources="$work/packages" -p:BaseOutputPath="$work/bin/" || true
  echo "FAIL build of the consumer against Polly.PriorityRouting $version"; failed=$((failed + 1)); summary; exit 1
fi

# The consumer took the package just packed, not a project or a cached package.
assets=tests/PackageSmoke/obj/project.assets.json
if grep -q "\"Polly.PriorityRouting/$version\"" "$assets" && ! grep -q '"type": "project"' "$assets"; then
  echo "PASS consumer restored Polly.PriorityRouting $version from the packed folder"; passed=$((passed + 1))
else
  echo "FAIL consumer did not restore Polly.PriorityRouting $version"; failed=$((failed + 1))
fi

run() {
  local output status=0
  output=$("$@" 2>&1) || status=$?
  echo "$output"
  passed=$((passed + $(grep -c '^PASS ' <<<"$output" || true)))
  failed=$((failed + $(grep -c '^FAIL ' <<<"$output" || true)))
  if [ "$status" -ne 0 ] && ! grep -q '^FAIL ' <<<"$output"; then failed=$((failed + 1)); fi
}
run dotnet "$work/bin/Release/net10.0/PackageSmoke.dll"
rid=$(dotnet msbuild tests/PackageSmoke/PackageSmoke.csproj -getProperty:NETCoreSdkRuntimeIdentifier)
run "$work/bin/Release/net8.0/$rid/PackageSmoke"

summary
[ "$failed" -eq 0 ]
