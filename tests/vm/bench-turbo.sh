#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# TurboOCI benchmark (issue #20), run inside the test VM by scripts/bench.sh
# (not a test: it prints ratios and PASS/MISS against the issue's targets; a
# miss does not fail it). An OCI image of OBD_BENCH_TURBO_MB (default 256)
# MiB of files in four gzip layers (tests/tools/turbo-image.py bench: files of
# 200 B to 700 KB in directories of 40, text, code-like and compressed data
# mixed, gzip 2-3x) is pushed with skopeo to Debian's docker-registry on
# 127.0.0.1, converted with `obd convert --turbo-oci` and pushed next to it,
# and converted with `obd convert` (native overlaybd, ZFile LZ4) too.
# overlaybd-fetchd runs with its defaults and gzipCacheConfig on.
#   a. start-up: on a cold cache, `obd mount` of the TurboOCI REF, then read
#      a start-up set of about 3 % of the files (as bench-remote.sh case 2).
#      Two sets: "spread", every 33rd file (bench-remote's); "dirs", every
#      33rd directory whole (a program reading its own library directories:
#      neighbours in the layer's tar). Bytes the registry served (blob GETs
#      in its access log: meta layers and target ranges) / the original
#      image's compressed size; time / pulling it the usual way, `skopeo copy
#      docker://... oci:DIR` + `umoci unpack`, from the same registry.
#   b. warm reads: every file of the fully fetched TurboOCI image (its gunzip
#      entries in the page cache) against the same files of the native
#      image attached from local files (also in the page cache); the file
#      system mounted afresh for each read, so only the layers are cached;
#      WARM_REPEAT samples, the order alternated. Before them every file of
#      both images is checked (sha256) against the umoci unpack.
#   c. case a over the unshaped loopback and over a link shaped as a real one
#      (tc netem on lo: 100 Mbit/s, 10 ms round trip; bench_lib.sh), side
#      by side; the pull goes over the same link. OBD_BENCH_LINKS picks.
# Every figure is the median of OBD_BENCH_REPEAT runs (default 3) with the
# per-run range; the summary table at the end gives the targets: start-up
# bytes < 10 %, start-up time < 0.5 of the pull, warm reads >= 0.9 of native.
# OBD_BENCH_LOGLEVEL=0 runs the daemon with debug logs.
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/bench_lib.sh
. "$OBD_TOP/tests/vm/bench_lib.sh"

MB=${OBD_BENCH_TURBO_MB:-256}
REPEAT=${OBD_BENCH_REPEAT:-3}
WARM_REPEAT=${OBD_BENCH_WARM_REPEAT:-5}
FS_MB=$((MB * 2 + 512))
obd=$OBD_TOP/build/obd
REG=127.0.0.1:5000
REF=http://$REG/bench/img:turbo
SK=(skopeo copy --quiet)
die() { echo "bench-turbo: $*"; exit 1; }
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
# verdict VALUE OP TARGET: PASS or MISS
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = op == "<" ? v < t : v >= t; print ok ? "PASS" : "MISS" }'; }

vm_load_module || die "cannot load dm-overlaybd"
w=/tmp/bench-turbo
bench_workdir "$w" $((MB * 8 + 2048))
mkdir -p mnt mnt2
bench_registry
bench_links

# rd.py sha|read ROOT LIST: sha256 of every listed file, or "bytes seconds"
# for reading them all (1 MiB reads into one buffer)
cat > rd.py <<'PY'
import hashlib, os, sys, time
mode, root, lst = sys.argv[1:4]
paths = [l.split("\t")[0] for l in open(lst) if l.strip()]
buf = bytearray(1 << 20)
n = 0
out = []
t0 = time.monotonic()
for p in paths:
    h = hashlib.sha256() if mode == "sha" else None
    with open(os.path.join(root, p), "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += k
            if h:
                h.update(memoryview(buf)[:k])
    if h:
        out.append("%s  %s" % (h.hexdigest(), p))
t = time.monotonic() - t0
print("\n".join(out) if mode == "sha" else "%d %.6f" % (n, t))
PY

svc() {	# a cold cache
	rm -rf cache gz
	mkdir -p cache gz
	cat > svc.json <<-JSON
	{ "logConfig": { "logLevel": ${OBD_BENCH_LOGLEVEL:-1} },
	  "cacheConfig": { "cacheDir": "$w/cache" },
	  "gzipCacheConfig": { "enable": true, "cacheDir": "$w/gz" } }
	JSON
}

echo "== TurboOCI benchmark, kernel $(uname -r), $(date -u '+%F %T') UTC; links: $BENCH_LINKS"
echo "== the image: about $MB MiB of files in four gzip layers (tests/tools/turbo-image.py bench)"
t0=$(now)
$PY "$OBD_TOP/tests/tools/turbo-image.py" bench src "$MB" > files.txt || die "cannot make the image"
# compressed and uncompressed sizes of the layers (gzip's ISIZE)
read -r csize usize nlayers <<<"$($PY - src <<'PY'
import json, struct, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
ls = json.load(open("%s/blobs/sha256/%s" % (d, i)))["layers"]
u = 0
for l in ls:
    with open("%s/blobs/sha256/%s" % (d, l["digest"].split(":")[1]), "rb") as f:
        f.seek(-4, 2)
        u += struct.unpack("<I", f.read(4))[0]
print(sum(l["size"] for l in ls), u, len(ls))
PY
)"
nfiles=$(wc -l < files.txt)
echo "$nfiles files, $nlayers layers: $usize bytes of tar, $csize bytes gzip ($(ratio "$usize" "$csize")x); made in $(secs "$t0" "$(now)") s"
"${SK[@]}" --dest-tls-verify=false oci:src "docker://$REG/bench/img:orig" || die "skopeo push of the image failed"
t0=$(now)
"$obd" convert --turbo-oci --size "${FS_MB}M" --no-progress oci:src turbo > /dev/null || die "obd convert --turbo-oci failed"
t1=$(now)
"${SK[@]}" --dest-tls-verify=false --preserve-digests oci:turbo "docker://$REG/bench/img:turbo" ||
	die "skopeo push of the TurboOCI image failed"
msize=$($PY - turbo <<'PY'
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
print(sum(l["size"] for l in json.load(open("%s/blobs/sha256/%s" % (d, i)))["layers"]))
PY
)
echo "obd convert --turbo-oci: $(secs "$t0" "$t1") s; meta layers $msize bytes ($(ratio3 "$msize" "$csize") of the gzip layers)"
t0=$(now)
"$obd" convert --size "${FS_MB}M" --no-progress oci:src native > /dev/null || die "obd convert failed"
echo "obd convert (native overlaybd, ZFile LZ4): $(secs "$t0" "$(now)") s; layers $(du -cb native/blobs/sha256/* | tail -1 | cut -f1) bytes with config and manifest"

# the start-up sets
awk -F'\t' 'NR % 33 == 0 { print $1 }' files.txt > spread.list
[ -s spread.list ] || head -1 files.txt | cut -f1 > spread.list
awk -F'\t' '{ sub("/[^/]*$", "", $1); print $1 }' files.txt | uniq > dirs.all
nd=$(wc -l < dirs.all)
k=$(((nd + 16) / 33))
[ "$k" -ge 1 ] || k=1
awk -v n="$nd" -v k="$k" 'BEGIN { for (j = 0; j < k; j++) pick[int((j + 0.5) * n / k) + 1] = 1 } pick[NR]' dirs.all > dirs.pick
awk -F'\t' 'NR == FNR { d[$1] = 1; next } { p = $1; sub("/[^/]*$", "", p) } d[p] { print $1 }' dirs.pick files.txt > dirs.list
for set in spread dirs; do
	echo "start-up set '$set': $(wc -l < $set.list) files, $(awk -F'\t' 'NR == FNR { s[$1] = 1; next } s[$1] { n += $2 } END { print n + 0 }' $set.list files.txt) bytes"
done

declare -A T B S
for link in $BENCH_LINKS; do
	link_set "$link"
	echo "== a. start-up over the $(link_name "$link") link, $REPEAT runs"
	for r in $(seq "$REPEAT"); do
		rm -rf pull bundle
		drop_caches
		l0=$(loglines)
		t0=$(now)
		"${SK[@]}" --src-tls-verify=false "docker://$REG/bench/img:orig" oci:pull:orig ||
			die "skopeo copy of the image failed"
		umoci unpack --image pull:orig bundle > /dev/null || die "umoci unpack failed"
		t1=$(now)
		T[$link.pull]+=" $(secs "$t0" "$t1")"
		B[$link.pull]+=" $(ratio3 "$(served_since "$l0")" "$csize")"
		for set in spread dirs; do
			svc
			start_fetchd svc.json
			drop_caches
			l0=$(loglines)
			t0=$(now)
			"$obd" mount --service-config svc.json --name tb "$REF" "$w/mnt" > /dev/null ||
				die "obd mount of $REF failed"
			(cd mnt && xargs cat < "../$set.list" > /dev/null) || die "reading the start-up set failed"
			t1=$(now)
			T[$link.$set]+=" $(secs "$t0" "$t1")"
			B[$link.$set]+=" $(ratio3 "$(served_since "$l0")" "$csize")"
			"$obd" umount "$w/mnt" || die "obd umount failed"
			stop_fetchd
			S[$link.$set]=$(fetchd_summary)
		done
	done
	pm=$(echo "${T[$link.pull]}" | median)
	echo "pull (skopeo copy + umoci unpack): ${pm} s ($(echo "${T[$link.pull]}" | range)); bytes served / compressed image $(echo "${B[$link.pull]}" | median)"
	for set in spread dirs; do
		echo "TurboOCI, set '$set': obd mount + read: $(echo "${T[$link.$set]}" | median) s ($(echo "${T[$link.$set]}" | range)); bytes served / compressed image $(echo "${B[$link.$set]}" | median) ($(echo "${B[$link.$set]}" | range))"
		echo "${S[$link.$set]}"
		echo "RESULT turbo start-up '$set' ($link): bytes served / compressed image $(echo "${B[$link.$set]}" | median), time / pull $(ratio "$(echo "${T[$link.$set]}" | median)" "$pm")"
	done
	[ "$link" = unshaped ] || link_stats
done
link_set unshaped

echo "== b. warm reads: every file ($nfiles) of the fully fetched TurboOCI image vs the native overlaybd image"
svc
start_fetchd svc.json
"$obd" attach --service-config svc.json --name tw "$REF" > /dev/null || die "obd attach of $REF failed"
vm_on_exit dmsetup remove tw
"$obd" attach --name nw native/config.v1.json > /dev/null || die "obd attach of the native image failed"
vm_on_exit dmsetup remove nw
mount -o ro,noload /dev/mapper/tw mnt || die "mount of the TurboOCI device failed"
mount -o ro,noload /dev/mapper/nw mnt2 || die "mount of the native device failed"
# the first read fetches the whole TurboOCI image; it checks every file too
$PY rd.py sha bundle/rootfs files.txt > sha.oci
$PY rd.py sha mnt files.txt > sha.turbo
$PY rd.py sha mnt2 files.txt > sha.native
bad=0
if cmp -s sha.turbo sha.oci && cmp -s sha.native sha.oci && [ "$(wc -l < sha.oci)" = "$nfiles" ]; then
	echo "content: all $nfiles files of both images equal the umoci unpack (sha256)"
else
	bad=1
	echo "CONTENT DIFFERS: TurboOCI $(diff sha.turbo sha.oci | grep -c '^<') files, native $(diff sha.native sha.oci | grep -c '^<') files differ from the umoci unpack"
fi
umount mnt
umount mnt2
# the daemon's background checks (a completed blob's sha256, a gunzip
# entry's whole-stream pass) done, the fetched data written back
fetchd_idle
sync
tw=() nw=()
for r in $(seq "$WARM_REPEAT"); do
	order="tw nw"
	[ $((r % 2)) -eq 0 ] && order="nw tw"
	for dev in $order; do
		mount -o ro,noload "/dev/mapper/$dev" mnt || die "mount of $dev failed"
		read -r n s <<<"$($PY rd.py read mnt files.txt)"
		umount mnt
		v=$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.1f", n / s / 1048576 }')
		if [ "$dev" = tw ]; then tw+=("$v"); else nw+=("$v"); fi
	done
done
twm=$(echo "${tw[*]}" | median)
nwm=$(echo "${nw[*]}" | median)
echo "TurboOCI ${twm} MiB/s ($(echo "${tw[*]}" | range)), native ${nwm} MiB/s ($(echo "${nw[*]}" | range))"
echo "RESULT turbo warm reads / native: $(ratio "$twm" "$nwm")"
dmsetup status tw
dmsetup remove tw
dmsetup remove nw
stop_fetchd
fetchd_summary

echo "== summary: TurboOCI, $nfiles files, $usize bytes of tar in $nlayers gzip layers of $csize bytes, kernel $(uname -r), medians of $REPEAT runs"
hdr="| figure |"
sep="|---|"
for link in $BENCH_LINKS; do
	hdr+=" $(link_name "$link") |"
	sep+="---:|"
done
echo "$hdr target |"
echo "$sep---:|"
for set in spread dirs; do
	case $set in
	spread) what="start-up, every 33rd file" ;;
	dirs) what="start-up, every 33rd directory" ;;
	esac
	row="| $what: bytes served / compressed image |"
	for link in $BENCH_LINKS; do
		v=$(echo "${B[$link.$set]}" | median)
		row+=" $v $(verdict "$v" "<" 0.10) |"
	done
	echo "$row < 0.10 |"
	row="| $what: time / skopeo copy + umoci unpack |"
	for link in $BENCH_LINKS; do
		v=$(ratio "$(echo "${T[$link.$set]}" | median)" "$(echo "${T[$link.pull]}" | median)")
		row+=" $v $(verdict "$v" "<" 0.5) |"
	done
	echo "$row < 0.5 |"
done
row="| the pull's own bytes served / compressed image |"
for link in $BENCH_LINKS; do
	row+=" $(echo "${B[$link.pull]}" | median) |"
done
echo "$row - |"
v=$(ratio "$twm" "$nwm")
row="| warm reads of every file, TurboOCI / native overlaybd (no link: both local) | $v $(verdict "$v" ">=" 0.9) |"
for link in ${BENCH_LINKS#* }; do
	[ "$link" = "${BENCH_LINKS%% *}" ] || row+=" - |"
done
echo "$row >= 0.9 |"
[ "$bad" = 0 ] || echo "CONTENT DIFFERS (above): the figures are of a wrong image"
kill "$REGPID"
wait "$REGPID" 2>/dev/null
cd /
umount "$w"
exit "$bad"
