#!/bin/sh
# deps.sh [STEP] -- installs the Debian/Ubuntu packages a make target needs
# when they are missing (apt-get, through sudo when not root). Quiet when
# everything is there already. STEP: run (default), test, check, valgrind,
# bench, fuzz, style, lint, contract, browser, safety, deb, package, or ci
# (all of them).
set -eu
what=${1:-run}
pkgs="build-essential pkg-config libmicrohttpd-dev libjansson-dev \
libhiredis-dev libcurl4-openssl-dev redis-server redis-tools curl"
# redis-sentinel: test_sentinel's sentinels (the tests start them as
# redis-server CONF --sentinel, the same program, on free ports).
test_pkgs="libcmocka-dev python3 redis-sentinel"
# make test's deployment checks (tests/deploy/): groff for the man page;
# promtool for the alert rules, see need_promtool below.
deploy_pkgs="groff-base"
# make deb (dpkg-buildflags, dpkg-shlibdeps) and make test-package (a
# clean debootstrap root, lintian, systemd-analyze).
deb_pkgs="dpkg-dev"
# make test-browser (tests/browser/): Debian's Chromium, driven headless by
# puppeteer-core (npm); also in the test profile, so a machine set up for
# make test can run the browser test too.
browser_pkgs="chromium"
package_pkgs="dpkg-dev debootstrap lintian systemd groff-base"
# make test's client library tests (tests/clients/): Go, Python with pip
# (the offline install check), and Node.js 18 or newer with npm (npx
# brings tsc), see clients_node below.
client_pkgs="golang-go python3 python3-pip"
clients_node=0
node=0
promtool=0
case $what in
run | safety) ;;
test)
    pkgs="$pkgs $test_pkgs $deploy_pkgs $client_pkgs $browser_pkgs"
    clients_node=1
    promtool=1
    ;;
check) pkgs="$pkgs $test_pkgs" ;;
valgrind) pkgs="$pkgs $test_pkgs valgrind" ;;
bench) pkgs="$pkgs wrk etcd-server webdis python3" ;;
fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
style) pkgs="$pkgs clang-format" ;;
lint | contract) node=1 ;;
browser)
    pkgs="$pkgs $browser_pkgs"
    clients_node=1
    ;;
deb) pkgs="$pkgs $deb_pkgs" ;;
package) pkgs="$pkgs $package_pkgs" ;;
ci)
    pkgs="$pkgs $test_pkgs golang-go valgrind clang libclang-rt-14-dev clang-format $deploy_pkgs $package_pkgs $client_pkgs $browser_pkgs"
    node=1
    promtool=1
    ;;
*)
    echo "deps.sh: unknown step '$what' (run, test, check, valgrind, bench, fuzz, style, lint, contract, browser, safety, deb, package, ci)" >&2
    exit 2
    ;;
esac
# Node.js (contract test, OpenAPI lint) may come from elsewhere than Debian
# (e.g. NodeSource, whose nodejs bundles npm): only ask apt when absent.
if [ $node = 1 ]; then
    command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi
# The client tests take any Node.js from 18 on (Debian 12's is 18).
if [ $clients_node = 1 ]; then
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
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
# promtool checks the alert rules (make test). Debian has it only in the
# prometheus package, whose installation also enables and starts a
# Prometheus server; so promtool alone is unpacked from that package into
# .run/tools/usr/bin (apt-get download, dpkg-deb), unless one is on PATH.
get_promtool() {
    [ $promtool = 1 ] || return 0
    command -v promtool >/dev/null 2>&1 && return 0
    tools="$(cd "$(dirname "$0")/.." && pwd)/.run/tools"
    [ -x "$tools/usr/bin/promtool" ] && return 0
    dl=$(mktemp -d "${TMPDIR:-/tmp}/lockservice-deps.XXXXXX") || exit 1
    if ! (cd "$dl" && apt-get download -q prometheus >/dev/null 2>&1); then
        $sudo apt-get update -q >/dev/null
        if ! (cd "$dl" && apt-get download -q prometheus >/dev/null 2>&1); then
            rm -rf "$dl"
            echo "deps.sh: cannot download Debian's prometheus package (for promtool)" >&2
            exit 1
        fi
    fi
    mkdir -p "$tools"
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$tools" ./usr/bin/promtool
    rm -rf "$dl"
    echo "deps.sh: promtool from Debian's prometheus package, in $tools/usr/bin"
}
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    check_node
    get_promtool
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing packages:$missing (no apt-get here; install them)" >&2
    exit 1
fi
echo "Installing:$missing"
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
check_node
get_promtool
