#!/bin/sh
# banned.sh -- fails when C sources use functions that invite overflows or
# silent misparsing (as curl's checksrc does). Everywhere: sprintf, vsprintf,
# strcpy, strcat, stpcpy, strtok, atoi, atol, atoll, gets. In the service's
# own code (service/, handlers/, demo-inventory/) and lockctl
# (tools/lockctl/) also strncpy and strncat,
# and the strto* family without an end pointer (strtoull(s, NULL, 10) cannot
# tell "12abc" from 12). Use snprintf, memcpy with a length, strtol/strtoull
# with an end pointer that is checked. A line that must break a rule says
# why in a comment holding "banned-ok:".
cd "$(dirname "$0")/.." || exit 2
everywhere='(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcpy|strcat|stpcpy|strtok|atoi|atol|atoll|gets)[[:space:]]*\('
service_only='(^|[^_a-zA-Z0-9])(strncpy|strncat)[[:space:]]*\('
no_end='(^|[^_a-zA-Z0-9])strto(l|ll|ul|ull|d|f|imax|umax)[[:space:]]*\([^,]*,[[:space:]]*NULL'
service=$(ls service/*.[ch] service/*/*.[ch] handlers/*.[ch] \
    demo-inventory/*.[ch] tools/lockctl/*.[ch] 2>/dev/null)
others=$(ls tests/*/*.[ch] bench/tools/*.c 2>/dev/null)
# shellcheck disable=SC2086 # word lists on purpose
hits=$({
    grep -nE -e "$everywhere" -e "$service_only" -e "$no_end" $service
    grep -nE -e "$everywhere" $others
} | grep -v 'banned-ok:')
if [ -n "$hits" ]; then
    echo "banned functions:"
    echo "$hits"
    exit 1
fi
