#!/bin/sh
# lockloop.sh BASE_URL LOCK_NAME UNTIL_EPOCH OUTFILE
# Acquires and releases LOCK_NAME through BASE_URL (nginx) in a loop until
# UNTIL_EPOCH, or until the file OUTFILE.stop exists, one line per request
# to OUTFILE: "<epoch> <op> <http status>", and for a granted acquire the
# lease's fence after it: "<epoch> acquire 200 <fence>".
# Status 000 means no HTTP answer at all (refused, reset, timed out).
# Used by tests/docker/run while it kills a replica, and the Redis master of
# the Sentinel stack.
base=$1 name=$2 until=$3 out=$4
body=$(mktemp) || exit 2
trap 'rm -f "$body"' EXIT
post() {
	curl -s -o "$body" -w '%{http_code}' --max-time 20 -X POST \
		-H 'Content-Type: application/json' --data "$2" "$base/v1/locks/$name/$1"
}
while [ "$(date +%s)" -lt "$until" ] && [ ! -e "$out.stop" ]; do
	code=$(post acquire '{"ttl_ms":5000,"wait_ms":8000,"owner":"lockloop"}')
	if [ "$code" != 200 ]; then
		echo "$(date +%s) acquire ${code:-000}" >>"$out"
		continue
	fi
	fence=$(sed -n 's/.*"fence" *: *\([0-9]*\).*/\1/p' "$body")
	echo "$(date +%s) acquire 200 ${fence:-none}" >>"$out"
	token=$(sed -n 's/.*"token" *: *"\([0-9a-f]*\)".*/\1/p' "$body")
	code=$(post release "{\"token\":\"$token\"}")
	echo "$(date +%s) release ${code:-000}" >>"$out"
done
