#!/bin/sh
# manpage.sh BINARY TEMPLATE -- prints the manual page of TEMPLATE
# (man/lockservice.8.in) with its OPTIONS and the variables of its
# ENVIRONMENT made from `BINARY --help`, and its version from
# `BINARY --version`. Each setting is one row in service/config.c, and
# --help prints them all: the page takes them from there instead of keeping
# a copy. The template's lines @OPTIONS@ and @ENVIRONMENT@ are replaced,
# and so are @VERSION@ and @DATE@ (SOURCE_DATE_EPOCH's day, else today's)
# in any line; every other line is copied as it is.
#
# --help's layout, as config_print_help writes it: an option line starts
# with two spaces and "--", its description starts after two or more
# spaces on that line or on the next ones, which are indented deeper; a
# description line "env: NAME" names its variable.
set -eu
bin=$1
template=$2
version=$("$bin" --version | sed -n 's/^lockservice //p')
[ -n "$version" ] || {
	echo "manpage.sh: $bin --version says no version" >&2
	exit 1
}
help=$("$bin" --help)
day=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff for one --help option: ".TP", the flag in bold, its argument in
# italics, the description, the variable.
options=$(printf '%s\n' "$help" | awk '
	function roff(s) {
		gsub(/\\/, "\\e", s)
		gsub(/-/, "\\-", s)
		return s
	}
	function flush() {
		if (flag == "")
			return
		print ".TP"
		if (arg != "")
			printf "\\fB%s\\fR \\fI%s\\fR\n", roff(flag), roff(arg)
		else
			printf "\\fB%s\\fR\n", roff(flag)
		text = desc
		sub(/^ +/, "", text)
		if (text != "") {
			line = roff(text)
			if (line ~ /^[.\047]/)
				line = "\\&" line
			if (line !~ /[.!?]$/)
				line = line "."
			print line
		}
		if (env != "") {
			print ".br"
			printf "Environment: \\fB%s\\fR.\n", roff(env)
		}
		flag = arg = desc = env = ""
	}
	/^  --/ {
		flush()
		s = substr($0, 3)
		n = match(s, /   */)
		if (n) {
			head = substr(s, 1, n - 1)
			desc = substr(s, n + RLENGTH)
		} else {
			head = s
			desc = ""
		}
		sp = index(head, " ")
		if (sp) {
			flag = substr(head, 1, sp - 1)
			arg = substr(head, sp + 1)
		} else {
			flag = head
			arg = ""
		}
		next
	}
	flag != "" && /^    / {
		s = $0
		sub(/^ +/, "", s)
		if (s ~ /^env: /)
			env = substr(s, 6)
		else
			desc = desc " " s
		next
	}
	{ flush() }
	END { flush() }
')
environment=$(printf '%s\n' "$help" | awk '
	function roff(s) { gsub(/-/, "\\-", s); return s }
	/^  --/ { flag = $1; next }
	/^ +env: / {
		s = $0
		sub(/^ +env: /, "", s)
		printf ".TP\n.B %s\nAs \\fB%s\\fR.\n", roff(s), roff(flag)
	}
')
if [ -z "$options" ] || [ -z "$environment" ]; then
	echo "manpage.sh: no options in $bin --help" >&2
	exit 1
fi

while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	@OPTIONS@) printf '%s\n' "$options" ;;
	@ENVIRONMENT@) printf '%s\n' "$environment" ;;
	*@VERSION@* | *@DATE@*)
		printf '%s\n' "$line" | sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$day/g"
		;;
	*) printf '%s\n' "$line" ;;
	esac
done <"$template"
