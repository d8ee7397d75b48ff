#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Malformed input and misuse: exit status != 0 and a message naming the file.
. "$(dirname "$0")/common.bash"

: > empty
head -c 100000 "$REF/l1.commit" > trunc.commit
head -c 300000 "$REF/l1.commit.lz4.zfile" > trunc.zfile
head -c 100000 "$REF/l2.commit.lz4.zfile.tar" > trunc.tar
head -c 20000 /dev/urandom > junk
head -c 4096 "$REF/l1.commit" > headonly
cp "$REF/l1.commit" badidx; chmod u+w badidx
# second index record's moffset -> far past the data area
printf '\xff\xff\xff\xff\xff\x00' | dd of=badidx bs=1 seek=$((1682944 + 24)) conv=notrunc status=none
cp "$REF/l1.commit.lz4.zfile" badhdr; chmod u+w badhdr
printf '\x00' | dd of=badhdr bs=1 seek=48 conv=notrunc status=none
printf 'ctl\033[31mname' > "$(printf 'ctl\033[31mname')"

for f in empty trunc.commit trunc.zfile trunc.tar junk headonly badidx badhdr nonexistent; do
	fails "info $f: exit 1, names the file" 1 "^obd: $f: " "$OBD" info "$f"
	fails "cat $f: exit 1, names the file" 1 "^obd: $f: " "$OBD" cat -o out "$f"
	fails "check $f: exit 1" 1 "" "$OBD" check "$f"
	grep -q "^$f: " "$T/.out"; ok $? "check $f: report names the file"
	fails "attach $f: exit 1, names the file" 1 "^obd: $f: " "$OBD" attach --table "$f"
	fails "commit $f: exit 1, names the file" 1 "^obd: $f: " "$OBD" commit -f "$f" out.commit
done
fails "stack with a bad layer names it" 1 "^obd: junk: " "$OBD" cat -o out "$REF/l1.commit" junk
fails "control characters in names are replaced by ?" 1 "^obd: ctl\?\[31mname: " \
	"$OBD" info "$(printf 'ctl\033[31mname')"
! grep -q $'\033' "$T/.err"; ok $? "  no escape byte reaches stderr"

# writable-layer misuse
"$OBD" create w.data w.index 1M >/dev/null
fails "index file alone" 1 "w.index: .*index file" "$OBD" info w.index
fails "writable layer below the top" 1 "w.data: .*only be the top" \
	"$OBD" info w.data "$REF/l1.commit" "$REF/l1.commit"
fails "append data file without its index" 1 "w.data: .*INDEX" "$OBD" info "$REF/l1.commit" w.data
fails "write: unaligned offset is a usage error" 2 "multiple of 512" \
	"$OBD" write w.data w.index --offset 100 /dev/null
fails "write: unaligned length" 1 "<stdin>: length 100 is not a multiple of 512" \
	bash -c "head -c 100 /dev/zero | '$OBD' write w.data w.index --offset 0"
fails "write: past the virtual size" 1 "w.data: write .* past the virtual size" \
	bash -c "head -c 4096 /dev/zero | '$OBD' write w.data w.index --offset 1M"
fails "write: --offset required" 2 "--offset is required" "$OBD" write w.data w.index
fails "discard: unaligned" 2 "multiples? of 512" "$OBD" discard w.data w.index --offset 0 --length 10
fails "discard: past the end" 1 "w.data: discard" "$OBD" discard w.data w.index --offset 0 --length 2M
fails "write into a committed layer" 1 "l1.commit: not a writable layer" \
	"$OBD" write "$REF/l1.commit" --offset 0 /dev/null
fails "create over an existing file" 1 "w.data" "$OBD" create w.data w2.index 1M
fails "create: bad size" 2 "bad VSIZE" "$OBD" create n.data n.index 12Q
fails "create: size not a multiple of 512" 2 "n.data: virtual size 1000 must be a multiple of 512" "$OBD" create n.data n.index 1000
fails "create: bad uuid" 2 "bad --uuid" "$OBD" create --uuid nope n.data n.index 1M
fails "commit --seal of a sparse layer" 1 "" bash -c "'$OBD' create -s sp 1M && '$OBD' commit --seal sp sp"
fails "commit: message too long" 2 "at most 256" "$OBD" commit -m "$(head -c 300 /dev/zero | tr '\0' x)" w.data w.index o
fails "commit --commit_sealed of a writable layer" 1 "not a sealed layer" \
	"$OBD" commit --commit_sealed w.data o
fails "cat: offset past the end" 1 "past the end" "$OBD" cat --offset 2G -o o "$REF/l1.commit"

# config files
echo '{"lowers":[{"file":"'"$REF"'/l1.commit"},{"digest":"sha256:ab"}]}' > remote.json
fails "config: remote-only layer" 1 "remote.json: layer 1: not local \(remote fetch not supported by this command\)" \
	"$OBD" cat -o o remote.json
# TurboOCI lowers (tests/tools/12-turbo-convert.sh reads good ones): info, cat
# and check read a local target; attach serves a tar target, local or in a
# registry, never the meta layer alone
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","targetDigest":"sha256:ab"}]}' > turbo.json
fails "attach: a TurboOCI lower with targetDigest and no repoBlobUrl" 1 \
	"turbo.json: lowers\[0\]: a TurboOCI layer whose target is in a registry .* needs the config's repoBlobUrl" \
	"$OBD" attach --table turbo.json
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","targetFile":"x"}]}' > turbo.json
fails "attach: a TurboOCI lower whose targetFile is missing" 1 \
	"turbo.json: lowers\[0\].targetFile: .*x: No such file" "$OBD" attach --table turbo.json
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","gzipIndex":"x"}]}' > turbo.json
fails "attach: a TurboOCI lower with only gzipIndex" 1 \
	"turbo.json: lowers\[0\]: a TurboOCI layer \(gzipIndex\) without targetFile" \
	"$OBD" attach --table turbo.json
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","targetDigest":"sha256:ab"}]}' > turbo.json
fails "config: a TurboOCI lower with only targetDigest (remote target) is refused" 1 \
	"turbo.json: lowers\[0\]: a TurboOCI layer whose target is only in a registry" \
	"$OBD" info turbo.json
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","targetFile":"x"}]}' > turbo.json
fails "config: a TurboOCI lower whose targetFile is missing" 1 \
	"turbo.json: lowers\[0\].targetFile: .*x: No such file" "$OBD" cat -o o turbo.json
echo '{"lowers":[{"file":"'"$REF"'/l1.commit","gzipIndex":"x"}]}' > turbo.json
fails "config: a TurboOCI lower with only gzipIndex" 1 \
	"turbo.json: lowers\[0\]: a TurboOCI layer \(gzipIndex\) without targetFile" \
	"$OBD" check turbo.json

echo '{"lowers":{"file":"x"}}' > t1.json
fails "config: lowers not an array" 1 "t1.json: lowers: expected an array" "$OBD" info t1.json
echo '{"lowers":[{"file":3}]}' > t2.json
fails "config: file not a string" 1 "t2.json: lowers\[0\].file: expected a string" "$OBD" info t2.json
echo '{"lowers":[' > t3.json
fails "config: invalid JSON" 1 "t3.json: not a valid JSON file" "$OBD" info t3.json
echo '[1]' > t4.json
fails "config: not an object" 1 "t4.json: .*expected a JSON object" "$OBD" info t4.json
echo '{"lowers":[]}' > t5.json
fails "config: no layers" 1 "t5.json: config has no layers" "$OBD" info t5.json
fails "config: missing" 1 "missing.json" "$OBD" info missing.json

# usage
fails "no command: usage, exit 2" 2 "usage: obd" "$OBD"
fails "unknown command: exit 2" 2 "unknown command 'frob'" "$OBD" frob
fails "unknown option: exit 2" 2 "usage: obd cat" "$OBD" cat --frob x
t "obd help" "$OBD" help
grep -q "Exit status: 0 success, 1 failure or problems found, 2 usage error" "$T/.out"
ok $? "obd help documents the exit codes"
t "obd help commit" "$OBD" help commit
grep -q -- "--commit_sealed" "$T/.out"; ok $? "obd help commit lists its options"
t "obd cat -h" "$OBD" cat -h
t "obd version" "$OBD" version

# attach: table built from absolute paths; no device-mapper needed for --table
t "attach --table" "$OBD" attach --table --direct-io --no-verify "$REF/l1.commit" \
	"$REF/l2.commit.lz4.zfile.tar"
is "  table line" "$(cat "$T/.out")" \
	"0 131072 overlaybd 2 $(realpath "$REF/l1.commit") $(realpath "$REF/l2.commit.lz4.zfile.tar") 2 direct_io no_verify"
# a writable layer alone is a blank disk (0 lowers), no longer refused (02 tests it)
t "attach a writable layer alone" "$OBD" attach --table w.data w.index
is "  0 lowers, the upper" "$(cut -d' ' -f4-6 "$T/.out")" "0 3 upper"

# A stack whose virtual size is not a multiple of 512 is refused everywhere,
# as the kernel refuses it (not silently truncated).
"$OBD" create vs.data vs.index 1M >/dev/null && head -c 4096 /dev/urandom |
	"$OBD" write vs.data vs.index --offset 0 && "$OBD" commit vs.data vs.index vs.commit
python3 -c 'import struct,os,sys; p=sys.argv[1]; f=open(p,"r+b"); f.seek(os.path.getsize(p)-4096+48); f.write(struct.pack("<Q",1048577))' vs.commit
for c in "attach --table" cat check info; do
	fails "$c: virtual size not a multiple of 512" 1 "stack virtual size 1048577 bytes" \
		"$OBD" $c vs.commit
done

# obd mount / umount: what is refused before anything is attached or mounted
# (the mounts themselves: tests/vm/52-mount.sh).
export OBD_MOUNT_STATE_DIR=$T/mount-state
mkdir -p mdir
fails "mount: IMAGE and DIR needed" 2 "expected IMAGE... DIR" "$OBD" mount mdir
fails "mount --upper of a read-only layer" 2 "not a writable layer" \
	"$OBD" mount --upper "$REF/l1.commit" "$REF/l1.commit" mdir
fails "mount --rw with --upper" 2 "exclude each other" \
	"$OBD" mount --rw rwd --upper w.data w.index "$REF/l1.commit" mdir
fails "mount on a file, not a directory" 1 "^obd: empty: not a directory" "$OBD" mount "$REF/l1.commit" empty
fails "mount on a missing directory" 1 "^obd: nodir: No such file" "$OBD" mount "$REF/l1.commit" nodir
fails "umount of a directory obd mount did not make" 1 "^obd: mdir: not mounted by obd mount" \
	"$OBD" umount mdir
fails "umount: one DIR" 2 "expected one DIR" "$OBD" umount
unset OBD_MOUNT_STATE_DIR

done_testing
