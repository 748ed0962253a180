#!/bin/sh
# banned.sh -- fails when C sources use functions that invite overflows or
# silent misparsing (as curl's checksrc does): sprintf, vsprintf, strcpy,
# strcat, strtok, atoi, atol, gets. Use snprintf, memcpy with a length,
# strtol/strtoll with an end pointer.
cd "$(dirname "$0")/.." || exit 2
hits=$(grep -nE '(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\(' \
    service/*.[ch] handlers/*.[ch] demo-inventory/*.[ch] tests/*/*.[ch] 2>/dev/null)
if [ -n "$hits" ]; then
    echo "banned functions:"
    echo "$hits"
    exit 1
fi
