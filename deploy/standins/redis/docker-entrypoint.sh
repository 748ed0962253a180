#!/bin/sh
# Like the official image's entrypoint: `docker run redis:7 --appendonly yes`
# means redis-server; redis-server runs as the redis user with protected mode
# off (arguments given later on the command line override it).
set -e
case ${1:-} in
-*|*.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
	shift
	set -- redis-server --protected-mode no "$@"
	if [ "$(id -u)" = 0 ]; then
		find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
		exec setpriv --reuid=redis --regid=redis --init-groups "$@"
	fi
fi
exec "$@"
