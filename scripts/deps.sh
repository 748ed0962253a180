#!/bin/sh
# deps.sh [STEP] -- installs the Debian/Ubuntu packages a make target needs
# when they are missing (apt-get, through sudo when not root). Quiet when
# everything is there already. STEP: run (default), test, check, valgrind,
# bench, fuzz, style, lint, contract, safety, or ci (all of them).
set -eu
what=${1:-run}
pkgs="build-essential pkg-config libmicrohttpd-dev libjansson-dev \
libhiredis-dev libcurl4-openssl-dev redis-server redis-tools curl"
test_pkgs="libcmocka-dev python3"
node=0
case $what in
run | safety) ;;
test | check) pkgs="$pkgs $test_pkgs" ;;
valgrind) pkgs="$pkgs $test_pkgs valgrind" ;;
bench) pkgs="$pkgs wrk etcd-server python3" ;;
fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
style) pkgs="$pkgs clang-format" ;;
lint | contract) node=1 ;;
ci)
    pkgs="$pkgs $test_pkgs golang-go valgrind clang libclang-rt-14-dev clang-format"
    node=1
    ;;
*)
    echo "deps.sh: unknown step '$what' (run, test, check, valgrind, bench, fuzz, style, lint, contract, safety, ci)" >&2
    exit 2
    ;;
esac
# Node.js (contract test, OpenAPI lint) may come from elsewhere than Debian
# (e.g. NodeSource, whose nodejs bundles npm): only ask apt when absent.
if [ $node = 1 ]; then
    command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi
# The OpenAPI linter (@redocly/cli 2) and the contract test need Node.js 20
# or newer; Debian 12's own nodejs is 18.
check_node() {
    [ $node = 1 ] || return 0
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ]; then
        echo "deps.sh: Node.js $(node --version 2>/dev/null || echo missing) found; make lint and make contract need 20 or newer (e.g. from NodeSource)" >&2
        exit 1
    fi
}
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    check_node
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing packages:$missing (no apt-get here; install them)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "Installing:$missing"
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
check_node
