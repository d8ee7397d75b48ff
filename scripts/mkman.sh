#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# mkman.sh OUTDIR: the manual pages, made from the documents they describe
# (one text for both, so the two cannot drift apart):
#
#   OUTDIR/obd.8               docs/obd.md            (go-md2man)
#   OUTDIR/overlaybd-fetchd.8  fetchd/README.md       (go-md2man)
#   OUTDIR/overlaybd.json.5    docs/overlaybd.json.md (go-md2man)
#   OUTDIR/dm-overlaybd.4      docs/dm-overlaybd.rst  (rst2man)
#
# A Markdown document becomes a page thus: the H1 "NAME: what it is" is the
# NAME line ("NAME - what it is"); the document's first fenced code block is
# the SYNOPSIS (and leaves its place); the text between the H1 and the first
# "##" heading is the DESCRIPTION; every heading goes up one level ("##" is
# .SH, "###" and below .SS); the sections for developers ("## Tests", "## Source
# layout", with what is under them) are left out; links become their text;
# tables become lists (a row's first cell is the tag; the text is the cells
# between as "header: cell; ...", then the last cell on a line of its own:
# go-md2man's tables cannot fold long cells into 80 columns). The reStructuredText
# document gets rst2man's title block (subtitle, manual section, date,
# version) in place of its own title. Every page ends with SEE ALSO naming
# the other three.
#
# Deterministic: the date is the one of debian/changelog's top entry and the
# version scripts/version.sh's, so a rebuild of a release gives the same
# bytes. Any warning of rst2man or go-md2man is an error.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1

for t in go-md2man rst2man; do
	command -v "$t" >/dev/null 2>&1 ||
		{ echo "mkman.sh: $t not found (go-md2man, python3-docutils)" >&2; exit 1; }
done

version=$("$top/scripts/version.sh")
stamp=$(sed -n 's/^ -- .*>  \(.*\)$/\1/p' "$top/debian/changelog" | head -n 1)
[ -n "$stamp" ] || { echo "mkman.sh: no date in debian/changelog's top entry" >&2; exit 1; }
date=$(LC_ALL=C date -u -d "$stamp" +%Y-%m-%d) ||
	{ echo "mkman.sh: debian/changelog: bad date '$stamp'" >&2; exit 1; }
source="dm-overlaybd $version"

mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkman.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Every page but the one named: SEE ALSO.
see_also() {
	for p in dm-overlaybd.4 obd.8 overlaybd-fetchd.8 overlaybd.json.5; do
		[ "$p" = "$1" ] && continue
		printf '%s**%s**(%s)' "${sep:-}" "${p%.*}" "${p##*.}"
		sep=', '
	done
	echo
}

# md_page SRC NAME SECTION MANUAL: OUTDIR/NAME.SECTION from the Markdown SRC.
md_page() {
	src=$top/$1 name=$2 sect=$3 manual=$4
	page=$name.$sect
	LC_ALL=C awk -v name="$name" -v sect="$sect" -v date="$date" -v source="$source" \
		-v manual="$manual" -v src="$1" -v seealso="$(see_also "$page")" '
	function fail(msg) { printf "mkman.sh: %s: %s\n", src, msg > "/dev/stderr"; err = 1; exit 1 }
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
	function is_fence(s) { return s ~ /^[ \t]*```/ }
	# [text](target) -> text: anchors and relative links mean nothing in a
	# manual page; an absolute URL stays, in parentheses.
	function delink(s,   out, pre, txt, tgt, i, j, k) {
		out = ""
		while ((i = index(s, "](")) > 0) {
			pre = substr(s, 1, i - 1)
			j = index(substr(s, i + 2), ")")
			if (j == 0 || (k = lastopen(pre)) == 0)
				{ out = out substr(s, 1, i + 1); s = substr(s, i + 2); continue }
			txt = substr(pre, k + 1)
			tgt = substr(s, i + 2, j - 1)
			out = out substr(pre, 1, k - 1) txt
			if (tgt ~ /^[a-z]+:/)
				out = out " (" tgt ")"
			s = substr(s, i + 2 + j)
		}
		return out s
	}
	function lastopen(s,   k, n) {
		n = 0
		for (k = length(s); k > 0; k--)
			if (substr(s, k, 1) == "[") return k
		return 0
	}
	# A table row: its cells, the pipes escaped as \| restored.
	function cells(s, arr,   n, i, m) {
		gsub(/\\\|/, "\001", s)
		s = trim(s)
		sub(/^\|/, "", s); sub(/\|$/, "", s)
		n = split(s, arr, "|")
		for (i = 1; i <= n; i++) {
			m = arr[i]; gsub(/\001/, "|", m); arr[i] = trim(m)
		}
		return n
	}
	{ line[++n] = $0 }
	END {
		if (err) exit 1
		# comments (the SPDX line), fences, the H1, the synopsis block
		infence = 0; incomment = 0
		for (i = 1; i <= n; i++) {
			l = line[i]
			if (!infence && l ~ /^<!--/) incomment = 1
			if (incomment) { skip[i] = 1; if (l ~ /-->[ \t]*$/) incomment = 0; continue }
			if (is_fence(l)) {
				fence[i] = 1
				if (!infence && !syn_from) syn_from = i
				if (infence && syn_from && !syn_to) syn_to = i
				infence = !infence
				continue
			}
			code[i] = infence
			if (!infence && !h1 && l ~ /^# /) h1 = i
			if (!infence && h1 && !first_h2 && l ~ /^##+ /) first_h2 = i
		}
		if (!h1) fail("no \"# " name ": ...\" heading")
		title = substr(line[h1], 3)
		if (index(title, name ": ") != 1) fail("the H1 must be \"" name ": <what it is>\", not \"" title "\"")
		if (!syn_from || !syn_to) fail("no fenced code block for the SYNOPSIS")
		if (!first_h2) first_h2 = n + 1
		for (i = syn_from; i <= syn_to; i++) { syn[i] = 1 }

		printf "%s %s \"%s\" \"%s\" \"%s\"\n", toupper(name), sect, date, source, manual
		print "======================================================================"
		print ""
		print "# NAME"
		print name " - " substr(title, length(name) + 3)
		print ""
		print "# SYNOPSIS"
		for (i = syn_from; i <= syn_to; i++) print line[i]
		print ""
		print "# DESCRIPTION"
		dropping = 0; intable = 0
		for (i = h1 + 1; i <= n; i++) {
			if (skip[i] || syn[i]) continue
			l = line[i]
			if (fence[i] || code[i]) { print l; continue }
			# developer sections: up to the next heading of their level or above
			if (l ~ /^## /) {
				h = trim(substr(l, 4))
				dropping = (h == "Tests" || h == "Source layout")
				if (dropping) continue
			}
			if (l ~ /^# /) dropping = 0
			if (dropping) continue
			# go-md2man: "#" and "##" are .SH, "###" and below .SS
			if (l ~ /^## /) { print substr(delink(l), 2); continue }
			if (l ~ /^###+ /) { sub(/^#+/, "###", l); print delink(l); continue }
			# a table (a row, then the delimiter row) becomes a list
			if (!intable && l ~ /^[ \t]*\|/ && line[i + 1] ~ /^[ \t]*\|[-:| \t]+\|[ \t]*$/) {
				nh = cells(l, head)
				intable = 1; i++
				continue
			}
			if (intable && l ~ /^[ \t]*\|/) {
				nc = cells(delink(l), row)
				if (nc != nh) fail("line " i ": " nc " cells, the header has " nh)
				print row[1]
				d = ""
				for (c = 2; c < nc; c++)
					if (row[c] != "") d = d (d == "" ? "" : "; ") head[c] ": " row[c]
				# the other cells on a line of their own, then the last
				if (nc > 1) d = (d == "" ? "" : d "  \n  ") row[nc]
				print ": " d
				print ""
				continue
			}
			intable = 0
			print delink(l)
		}
		print ""
		print "# SEE ALSO"
		print seealso
	}' "$src" > "$tmp/$page.md"
	go-md2man -in "$tmp/$page.md" -out "$tmp/$page.raw" 2> "$tmp/err" || {
		cat "$tmp/err" >&2; exit 1; }
	if [ -s "$tmp/err" ]; then cat "$tmp/err" >&2; exit 1; fi
	# A text line starting with "." or "'" would be read as a request:
	# escape it, unless it is one of the requests go-md2man writes.
	LC_ALL=C awk '
	/^\.(nh|TH|SH|SS|PP|RS|RE|nf|fi|TS|TE|TP|IP|br|ti)( |$)/ { print; next }
	/^[.'\'']/ { print "\\&" $0; next }
	{ print }' "$tmp/$page.raw" > "$out/$page"
}

md_page docs/obd.md obd 8 "System Manager's Manual"
md_page fetchd/README.md overlaybd-fetchd 8 "System Manager's Manual"
md_page docs/overlaybd.json.md overlaybd.json 5 "File Formats Manual"

# dm-overlaybd(4): the document's title block (the SPDX comment, then the
# overlined title) is replaced by rst2man's, "Introduction" is the
# DESCRIPTION.
rst=$top/docs/dm-overlaybd.rst
{
	cat <<-EOF
	============
	dm-overlaybd
	============

	---------------------------------------------------------
	device-mapper target serving overlaybd images
	---------------------------------------------------------

	:Manual section: 4
	:Manual group: Kernel Interfaces Manual
	:Date: $date
	:Version: $source

	EOF
	LC_ALL=C awk -v src=docs/dm-overlaybd.rst '
	{ line[++n] = $0 }
	END {
		# skip to the line after the overlined title
		for (i = 1; i <= n && line[i] !~ /^=+$/; i++) ;
		if (i + 2 > n || line[i + 2] !~ /^=+$/) {
			print "mkman.sh: " src ": no overlined title at the top" > "/dev/stderr"
			exit 1
		}
		for (i += 3; i <= n; i++) {
			if (line[i] == "Introduction" && line[i + 1] ~ /^=+$/) {
				print "Description"; print "==========="; i++; continue
			}
			print line[i]
		}
	}' "$rst"
	printf '\nSee also\n========\n\n'
	see_also dm-overlaybd.4 | sed 's/\*\*(/**\\ (/g'
} > "$tmp/dm-overlaybd.rst"
rst2man --halt=warning --report=warning "$tmp/dm-overlaybd.rst" "$tmp/dm-overlaybd.4" 2> "$tmp/err" || {
	sed "s|$tmp/dm-overlaybd.rst|docs/dm-overlaybd.rst (as given to rst2man)|" "$tmp/err" >&2; exit 1; }
if [ -s "$tmp/err" ]; then
	sed "s|$tmp/dm-overlaybd.rst|docs/dm-overlaybd.rst (as given to rst2man)|" "$tmp/err" >&2
	exit 1
fi
# rst2man boxes its tables (|l|l| and a rule under every row): a row that
# a page break splits then draws above the page (grotty: "character above
# first line discarded"). Unboxed, the text column taking the width left.
LC_ALL=C awk '
/^\.TS$/ { tbl = 1 }
/^\.TE$/ { tbl = 0 }
tbl && /^_$/ { next }
tbl && /^center;$/ { next }
tbl && /^(\|l)+\|\.$/ { n = gsub(/\|l/, ""); f = ""; while (--n) f = f "l "; print f "lx."; next }
{ print }' "$tmp/dm-overlaybd.4" > "$out/dm-overlaybd.4"
