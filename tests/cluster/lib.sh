# Sourced by the tests of launch/cluster: $1 is the alexnet binary. Sets bin, src (the
# repository), here (tests/), cluster (launch/cluster), tmp, dir (the cluster's directory, not
# made yet), ok/bad counters, a trap that takes the cluster down and removes tmp, and skips
# (exit 77, with the reason) where namespaces cannot be made.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$src/tests
cluster=$src/launch/cluster
tmp=$(mktemp -d)
dir=$tmp/cluster
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
cleanup() {
  [ -e "$dir/cluster.json" ] && "$cluster" down --dir "$dir" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: launch/cluster needs root (network namespaces)"; exit 77; fi
if ! out=$(unshare --net --uts --mount true 2>&1); then
  echo "SKIP: this machine does not allow network namespaces: $out"
  exit 77
fi
