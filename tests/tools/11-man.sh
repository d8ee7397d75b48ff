#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The manual pages (scripts/mkman.sh): all four are made, twice the same
# bytes, dated and versioned from debian/changelog; `man --warnings` has
# nothing to say about them at 80 columns; lexgrog finds each one's NAME
# line; every heading of the documents they are made from is in them but
# the developers' sections; no link residue. Drift: obd.8 has a usage line
# for every subcommand `obd --help` lists, overlaybd.json.md a table row and
# overlaybd.json.5 an entry for every key registry/config.c parses, and the
# example in overlaybd.json.md has every key and is a config obd accepts.
# Each drift check is also run on a copy of the sources with a key, a
# subcommand's section and a new parser key made to drift: it must fail.
. "$(dirname "$0")/common.bash"
skip_without go-md2man rst2man man lexgrog

PAGES="obd.8 overlaybd-fetchd.8 dm-overlaybd.4 overlaybd.json.5"

# render PAGE: the text man shows, hyphenation off (a key split at a line's
# end would not be found)
render() { MANWIDTH=80 MANROFFOPT=-rHY=0 man -l "$1" 2>/dev/null; }

# config_keys CONFIG_C: the keys the parser reads, one a line (sections,
# "section.key", top-level keys). Forms: a literal "section.key" (the
# dotted name every getter is given); sect(x, root, "section"); a getter on
# root ("userAgent"); a struct uint_key table { "key", ... } or a getter
# given the variable `dotted` and a literal key, prefixed by the literal
# get_uint_keys() gets in that function or else by the literal each caller
# passes the function ("UNRESOLVED" when there is none).
config_keys() {
	awk '
	function flush(   i) {
		for (i = 1; i <= nk; i++) {
			if (lit != "") print lit "." k[i]
			else pend[fn] = pend[fn] " " k[i]
		}
		nk = 0; lit = ""; fn = ""
	}
	function lastlit(s) { sub(/"$/, "", s); sub(/.*"/, "", s); return s }
	/^#/ { next }
	/\/\*/ { incom = 1 }
	incom { if ($0 ~ /\*\//) { sub(/.*\*\//, ""); incom = 0 } else next }
	/^[a-z].*[a-z_0-9]+\(/ && !/;[ \t]*$/ {
		flush(); s = $0; sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); fn = w[n]
	}
	/^}/ { flush() }
	{
		line = $0
		while (match(line, /"[A-Za-z0-9_]+\.[A-Za-z0-9_]+"/)) {
			print substr(line, RSTART + 1, RLENGTH - 2)
			line = substr(line, RSTART + RLENGTH)
		}
		if (match($0, /sect\([^,]*, *root, *"[A-Za-z0-9_]+"/))
			print lastlit(substr($0, RSTART, RLENGTH))
		if (match($0, /get_[a-z_]+\(&?x, *root, *"[A-Za-z0-9_]+"/))
			print lastlit(substr($0, RSTART, RLENGTH))
		if (match($0, /^[ \t]*\{ *"[A-Za-z0-9_]+",/)) {
			s = substr($0, RSTART, RLENGTH); sub(/",$/, "\"", s); k[++nk] = lastlit(s)
		}
		if (match($0, /get_[a-z_]+\(&?x, *[a-z]+, *dotted, *"[A-Za-z0-9_]+"/))
			k[++nk] = lastlit(substr($0, RSTART, RLENGTH))
		if (match($0, /get_uint_keys\([^,]*, *[^,]*, *"[A-Za-z0-9_]+"/))
			lit = lastlit(substr($0, RSTART, RLENGTH))
		line = $0
		while (match(line, /[a-z_]+\([a-z]+, *"[A-Za-z0-9_]+"/)) {
			s = substr(line, RSTART, RLENGTH); c = s; sub(/\(.*/, "", c)
			calls[c] = calls[c] " " lastlit(s)
			line = substr(line, RSTART + RLENGTH)
		}
	}
	END {
		flush()
		for (f in pend) {
			if (!(f in calls)) { print "UNRESOLVED(" f ":" pend[f] ")"; continue }
			np = split(calls[f], ps, " "); nq = split(pend[f], qs, " ")
			for (i = 1; i <= np; i++) for (j = 1; j <= nq; j++) print ps[i] "." qs[j]
		}
	}' "$1" | sort -u
}

# missing_keys ROOT OUT: the keys of ROOT/registry/config.c without a row
# (first cell `key`) in ROOT/docs/overlaybd.json.md or without an entry
# (the tag "key" or "key (ours)") in OUT/overlaybd.json.5
missing_keys() {
	local k txt
	txt=$(render "$2/overlaybd.json.5")
	config_keys "$1/registry/config.c" | while read -r k; do
		grep -qF -- "| \`$k\` " "$1/docs/overlaybd.json.md" &&
			grep -qxE -- " {7}${k//./\\.}( \(ours\))?" <<<"$txt" || echo "$k"
	done
}

# missing_cmds OUT: the subcommands of `obd --help` without a usage line
# ("obd CMD ..." at the start of a line of a code block) in OUT/obd.8
missing_cmds() {
	local c code
	code=$(awk '/^\.nf$/ { f = 1; next } /^\.fi$/ { f = 0 } f' "$1/obd.8")
	"$OBD" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 { print $1 }' | while read -r c; do
		grep -qE -- "^obd $c( |$)" <<<"$code" || echo "$c"
	done
}

# md_headings DOC: its "##" and deeper headings outside code blocks, as
# text, but the developers' sections (Tests, Source layout and below)
md_headings() {
	awk '/^[ \t]*```/ { f = !f; next }
	f { next }
	/^## / { drop = ($0 == "## Tests" || $0 == "## Source layout") }
	/^##+ / && !drop { sub(/^#+ /, ""); gsub(/`/, ""); print }' "$1"
}

# rst_headings DOC: its section titles (a line underlined with = - ~),
# the overlined document title left out
rst_headings() {
	awk 'NR > 1 && /^(=+|-+|~+)$/ && length($0) >= length(prev) && prev !~ /^(=+|-+|~+)?$/ &&
	     prevprev !~ /^(=+|-+|~+)$/ { print prev }
	{ prevprev = prev; prev = $0 }' "$1"
}

# missing_headings DOC PAGE: the headings of DOC not shown as a heading
# (a line of its own) in PAGE; rst2man writes level-1 titles in capitals
missing_headings() {
	local h txt
	txt=$(render "$2" | sed 's/^ *//')
	case $1 in *.rst) rst_headings "$1" ;; *) md_headings "$1" ;; esac | while IFS= read -r h; do
		[ "$h" = Introduction ] && h=Description	# mkman.sh: the DESCRIPTION
		grep -qixF -- "$h" <<<"$txt" || echo "$h"
	done
}

# --- the pages ------------------------------------------------------------------
t "mkman.sh OUT" "$top/scripts/mkman.sh" "$T/man"
is "  prints nothing" "$(cat "$T/.out" "$T/.err")" ""
for p in $PAGES; do
	[ -s "$T/man/$p" ]; ok $? "  $p made"
done
"$top/scripts/mkman.sh" "$T/man2" >/dev/null 2>&1
is "a second run gives the same bytes" "$(cd "$T/man" && sha256sum $PAGES)" \
	"$(cd "$T/man2" && sha256sum $PAGES)"
ver=$("$top/scripts/version.sh")
date=$(LC_ALL=C date -u -d "$(sed -n 's/^ -- .*>  //p' "$top/debian/changelog" | head -n 1)" +%F)
for p in $PAGES; do
	grep -q "^\.TH .*\"$date\" \"dm-overlaybd $ver\"" "$T/man/$p"
	ok $? "$p: dated $date (debian/changelog), version $ver"
	MANWIDTH=80 man --warnings -l "$T/man/$p" >/dev/null 2>"$T/warn"
	ok $? "$p: man --warnings -l exits 0"
	is "  and warns of nothing" "$(head -n 5 "$T/warn")" ""
	lexgrog "$T/man/$p" >"$T/whatis" 2>&1
	grep -qE "^$T/man/$p: \"${p%.*} - .+\"$" "$T/whatis"
	ok $? "$p: lexgrog finds the whatis line ($(sed 's/^[^"]*//' "$T/whatis"))"
	render "$T/man/$p" >"$T/$p.txt"
	! grep -qE '⟨#|\]\(' "$T/$p.txt"
	ok $? "$p: no link residue (⟨#..⟩, ](..))"
	grep -q '^SEE ALSO$' "$T/$p.txt"
	ok $? "$p: SEE ALSO"
done

# --- one text: the pages have the documents' sections --------------------------
for d in docs/obd.md:obd.8 fetchd/README.md:overlaybd-fetchd.8 \
	docs/overlaybd.json.md:overlaybd.json.5 docs/dm-overlaybd.rst:dm-overlaybd.4; do
	m=$(missing_headings "$top/${d%%:*}" "$T/man/${d#*:}")
	is "${d#*:} has every section of ${d%%:*}" "$m" ""
done
for s in Tests "Source layout" "The registry library"; do
	! grep -qE "^ *$s" "$T/obd.8.txt" "$T/overlaybd-fetchd.8.txt"
	ok $? "developers' section '$s' left out"
done
! grep -qE '^ *(main|loop|channel)\.c ' "$T/overlaybd-fetchd.8.txt"
ok $? "  and the source file table with it"

# --- drift: subcommands and config keys -------------------------------------------
keys=$(config_keys "$top/registry/config.c")
! grep -q UNRESOLVED <<<"$keys"
ok $? "the keys of registry/config.c are all found ($(wc -l <<<"$keys") keys)"
for k in cacheConfig.evictGraceSec credentialFilePath credentialConfig.server_ca_path \
	certConfig.caFile logConfig.logLevel userAgent fetchConfig.isolatedRefillKB \
	download.enable download.blockSize exporterConfig.updateInterval p2pConfig.address \
	prefetchConfig.concurrency; do
	grep -qx "$k" <<<"$keys" || { echo "# not found: $k"; false; }
done
ok $? "  among them one of each section, of each form (literal, table, prefixed)"
is "obd.8 has a usage line for every subcommand of obd --help" "$(missing_cmds "$T/man")" ""
is "overlaybd.json.md and .5 have every key of registry/config.c" \
	"$(missing_keys "$top" "$T/man")" ""

# every ```json block of overlaybd.json.md is a config obd accepts; the first
# (the "Example") names every key
awk '/^```json/ { n++; f = 1; next } /^```/ { f = 0 } f { print > ("ex" n ".json") }' \
	"$top/docs/overlaybd.json.md"
mkdir -p cache
for e in ex*.json; do
	t "overlaybd.json.md: example $e is a valid service config" \
		"$OBD" cache --service-config "$e" --dir "$T/cache"
done
is "  the first has every key" "$(python3 -c '
import json, sys
def walk(o, p):
    for k, v in o.items():
        yield p + k
        if isinstance(v, dict) and p == "":
            yield from walk(v, k + ".")
print("\n".join(sorted(set(walk(json.load(open(sys.argv[1])), "")))))' ex1.json)" \
	"$(LC_ALL=C sort <<<"$keys")"

# --- the drift checks fail on a copy made to drift -----------------------------------
mkdir -p tree/scripts tree/docs tree/fetchd tree/debian tree/registry
cp "$top"/scripts/mkman.sh "$top"/scripts/version.sh tree/scripts/
cp "$top"/docs/obd.md "$top"/docs/dm-overlaybd.rst "$top"/docs/overlaybd.json.md tree/docs/
cp "$top"/fetchd/README.md tree/fetchd/
cp "$top"/debian/changelog tree/debian/
cp "$top"/registry/config.c tree/registry/
grep -v '^| `fetchConfig.maxRetries` ' "$top/docs/overlaybd.json.md" > tree/docs/overlaybd.json.md
awk '/^## push$/ { skip = 1; next } /^## / { skip = 0 } !skip' "$top/docs/obd.md" > tree/docs/obd.md
sed -i 's/"fetchConfig.noProxy", "noProxy"/&); rc = get_str(x, o, "fetchConfig.newKey", "newKey"/' \
	tree/registry/config.c
t "mkman.sh on a copy without fetchConfig.maxRetries and obd push" tree/scripts/mkman.sh "$T/tree/man"
is "  the key check names the key removed and the key added" \
	"$(missing_keys "$T/tree" "$T/tree/man" | tr '\n' ' ')" "fetchConfig.maxRetries fetchConfig.newKey "
is "  the subcommand check names push" "$(missing_cmds "$T/tree/man")" push
is "  the section check names push" "$(missing_headings "$top/docs/obd.md" "$T/tree/man/obd.8")" push
echo '# Broken' > tree/docs/overlaybd.json.md
fails "mkman.sh refuses a document without its NAME heading" 1 \
	'overlaybd.json.md: the H1 must be "overlaybd.json: <what it is>"' tree/scripts/mkman.sh "$T/tree/man"
cp "$top"/docs/overlaybd.json.md tree/docs/
printf '\nBad\n===\n\n.. foo::\n' >> tree/docs/dm-overlaybd.rst
fails "mkman.sh fails on a warning of rst2man" 1 'Unknown directive type' \
	tree/scripts/mkman.sh "$T/tree/man"

done_testing
