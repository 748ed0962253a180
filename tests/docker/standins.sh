#!/bin/sh
# Local stand-ins for the public images the Dockerfile and docker-compose.yml
# use, for machines that reach Debian's apt mirror but no container registry
# (this project's CI). Each image is first looked for locally, then pulled;
# only when both fail is a stand-in built under the same name:
#
#   debian:bookworm-slim  debootstrap --variant=minbase, slimmed the way the
#                         official image is (no docs/man/locales, apt clean
#                         hooks, policy-rc.d), then `docker import`
#   redis:7               deploy/standins/redis  (Debian's redis-server 7.0)
#   nginx:stable          deploy/standins/nginx  (Debian's nginx 1.22)
#
# Stand-ins carry the label org.lockservice.standin=true, and the built ones
# org.lockservice.standin.context=<hash of their deploy/standins/ directory>:
# a stand-in built from an older directory (one without redis-sentinel, say)
# is built again, while a pulled image is kept as it is. The debootstrap
# result is cached as a tarball in $LOCKSERVICE_DOCKER_CACHE (default
# ~/.cache/lockservice-docker), so a rerun after `docker image prune -a`
# takes seconds, not a minute. tests/package/run unpacks the same tarball
# (standins_rootfs) as the clean root it installs the .deb into.
#
# Usable on its own:  sh tests/docker/standins.sh [--force]
# or sourced by tests/docker/run, which calls standins_ensure.

: "${LOCKSERVICE_DOCKER_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/lockservice-docker}"
: "${REDIS_IMAGE:=redis:7}"
: "${NGINX_IMAGE:=nginx:stable}"
BASE_IMAGE=debian:bookworm-slim
STANDIN_LABEL=org.lockservice.standin=true

standins_log() { printf '[standins] %s\n' "$*" >&2; }

# The Debian mirror this host's apt uses (deb822 or one-line format), unless
# DEBIAN_MIRROR is set.
standins_mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then
		echo "$DEBIAN_MIRROR"
		return
	fi
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		m=$(awk '
			/^[[:space:]]*#/ { next }
			/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }
			/^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\// && $i ~ /\/debian\/?$/) { print $i; exit } }
		' "$f")
		if [ -n "$m" ]; then
			echo "${m%/}"
			return
		fi
	done
	echo http://deb.debian.org/debian
}

standins_security_mirror() {
	if [ -n "${DEBIAN_SECURITY_MIRROR:-}" ]; then
		echo "$DEBIAN_SECURITY_MIRROR"
		return
	fi
	m=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -v '^[[:space:]]*#' | grep -o '[a-z]*://[^[:space:]]*/debian-security' | head -n 1)
	echo "${m:-$(standins_mirror)-security}"
}

standins_have() { docker image inspect "$1" >/dev/null 2>&1; }

# Try a registry pull, bounded; quiet on failure.
standins_pull() {
	[ "${LOCKSERVICE_DOCKER_NO_PULL:-0}" = 1 ] && return 1
	timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

# Build the slimmed debootstrap root as a tarball, once (cached), and print
# its path. tests/package/run unpacks it as the clean root it installs the
# .deb into.
standins_rootfs() {
	tarball="$LOCKSERVICE_DOCKER_CACHE/debian-bookworm-slim-rootfs.tar"
	if [ ! -s "$tarball" ]; then
		command -v debootstrap >/dev/null 2>&1 || { standins_log "debootstrap missing"; return 1; }
		mirror=$(standins_mirror)
		secmirror=$(standins_security_mirror)
		mkdir -p "$LOCKSERVICE_DOCKER_CACHE" || return 1
		root="$LOCKSERVICE_DOCKER_CACHE/rootfs.$$"
		rm -rf "$root"
		standins_log "debootstrap bookworm from $mirror (about a minute) ..."
		if ! timeout 900 debootstrap --variant=minbase bookworm "$root" "$mirror" \
			>"$LOCKSERVICE_DOCKER_CACHE/debootstrap.log" 2>&1; then
			standins_log "debootstrap failed; see $LOCKSERVICE_DOCKER_CACHE/debootstrap.log"
			tail -n 20 "$LOCKSERVICE_DOCKER_CACHE/debootstrap.log" >&2
			rm -rf "$root"
			return 1
		fi
		standins_slim "$root" "$mirror" "$secmirror" || { rm -rf "$root"; return 1; }
		tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
		rc=$?
		rm -rf "$root"
		[ $rc -eq 0 ] || return 1
	fi
	echo "$tarball"
}

# Import the debootstrap tarball as debian:bookworm-slim.
standins_base() {
	tarball=$(standins_rootfs) || return 1
	standins_log "importing $tarball as $BASE_IMAGE"
	docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		--change "LABEL $STANDIN_LABEL" \
		--message "lockservice stand-in for $BASE_IMAGE (debootstrap minbase)" \
		"$tarball" "$BASE_IMAGE" >/dev/null
}

# What debuerreotype does to make the official slim image, more or less.
standins_slim() {
	root=$1 mirror=$2 secmirror=$3
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d" "$root/etc/apt/sources.list.d"
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	rm -f "$root/etc/apt/sources.list"
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $secmirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null
	rm -rf "$root/usr/share/groff/"* "$root/usr/share/info/"* "$root/usr/share/linda/"* \
		"$root/usr/share/lintian/"* "$root/usr/share/locale/"* "$root/usr/share/man/"*
	rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin \
		"$root/var/cache/apt/archives/"*.deb "$root/var/cache/apt/archives/partial/"* \
		"$root/var/cache/debconf/"*-old "$root/var/lib/dpkg/"*-old "$root/var/log/"*.log \
		"$root/var/log/apt/"* "$root/tmp/"* "$root/root/.bash_history"
	: >"$root/etc/resolv.conf"
	: >"$root/etc/hostname"
	: >"$root/etc/machine-id" 2>/dev/null
	return 0
}

# The hash of the files of deploy/standins/<dir>, names and contents.
standins_context_hash() {
	ctx="${LOCKSERVICE_REPO:?set LOCKSERVICE_REPO to the repository root}/deploy/standins/$1"
	(cd "$ctx" && find . -type f | LC_ALL=C sort | while read -r f; do
		printf '%s\n' "$f"
		cat "$f"
	done) | sha256sum | cut -c1-16
}

# True when image is a stand-in built from another deploy/standins/<dir>
# than the one here (a pulled image or the imported base: false).
standins_stale() {
	image=$1 dir=$2
	built=$(docker image inspect -f '{{index .Config.Labels "org.lockservice.standin.context"}}' "$image" 2>/dev/null)
	standin=$(docker image inspect -f '{{index .Config.Labels "org.lockservice.standin"}}' "$image" 2>/dev/null)
	[ "$standin" = true ] && [ "$built" != "$(standins_context_hash "$dir")" ]
}

# Build a stand-in from deploy/standins/<dir>. Needs the base image.
standins_build() {
	image=$1 dir=$2
	ctx="${LOCKSERVICE_REPO:?set LOCKSERVICE_REPO to the repository root}/deploy/standins/$dir"
	[ -f "$ctx/Dockerfile" ] || { standins_log "no $ctx/Dockerfile"; return 1; }
	standins_log "building stand-in $image from $ctx (Debian packages)"
	DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} timeout 600 docker build -q --network host \
		--label "$STANDIN_LABEL" --label "org.lockservice.standin.context=$(standins_context_hash "$dir")" \
		-t "$image" "$ctx" >/dev/null
}

# Make sure all three images exist: local, pulled, or stand-in.
standins_ensure() {
	force=${1:-}
	for pair in "$BASE_IMAGE:base" "$REDIS_IMAGE:redis" "$NGINX_IMAGE:nginx"; do
		image=${pair%:*} kind=${pair##*:}
		if [ "$force" != --force ] && standins_have "$image"; then
			if [ "$kind" = base ] || ! standins_stale "$image" "$kind"; then
				continue
			fi
			standins_log "$image is a stand-in from an older deploy/standins/$kind"
		elif [ "$force" != --force ] && standins_pull "$image"; then
			standins_log "pulled $image"
			continue
		fi
		case $kind in
		base) standins_base || return 1 ;;
		*) standins_have "$BASE_IMAGE" || standins_base || return 1
		   standins_build "$image" "$kind" || return 1 ;;
		esac
	done
}

case ${0##*/} in
standins.sh)
	set -u
	LOCKSERVICE_REPO=${LOCKSERVICE_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
	standins_ensure "${1:-}"
	;;
esac
