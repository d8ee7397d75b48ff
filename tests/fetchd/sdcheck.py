#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Helpers of 92-service.sh.

  sdcheck.py notify-listen SOCKET LOG   an sd_notify(3) receiver: each datagram
                                        -> "<unix time> <message>" lines in LOG
  sdcheck.py syscalls UNIT STRACE       the system calls STRACE (strace -f -o)
                                        shows that UNIT's SystemCallFilter= would
                                        refuse; prints them, status 1 if any
"""
import os
import re
import socket
import subprocess
import sys
import time


def notify_listen(path, log):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    with open(log, "a", buffering=1) as f:
        while True:
            m = s.recv(4096).decode(errors="replace")
            for line in m.split("\n"):
                f.write("%.3f %s\n" % (time.time(), line))


def groups():
    """systemd's @groups -> their members (group names or calls)"""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            g[cur] = []
        elif cur and line.startswith("    ") and not line.strip().startswith("#"):
            g[cur].append(line.strip())
    return g


def expand(names, g, seen=None):
    out = set()
    for n in names:
        if n.startswith("@"):
            out |= expand(g.get(n, []), g)
        else:
            out.add(n)
    return out


def allowed(unit):
    """systemd's rule: the first line decides allow- or deny-list; later
    lines add to it (~ lines remove from an allow-list)"""
    g = groups()
    allow, mode = set(), None
    for line in open(unit):
        m = re.match(r"\s*SystemCallFilter=(.*)", line)
        if not m:
            continue
        v = m.group(1).strip()
        neg = v.startswith("~")
        names = expand(v.lstrip("~").split(), g)
        if mode is None:
            mode = "deny" if neg else "allow"
            if mode == "allow":
                allow = set(names) | expand(["@default"], g)
            else:
                sys.exit("a deny-list unit: not handled")
            continue
        if neg:
            allow -= names
        else:
            allow |= names
    return allow


def syscalls(unit, trace):
    allow = allowed(unit)
    used = set()
    for line in open(trace):
        m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)", line)
        if m:
            used.add(m.group(1))
    bad = sorted(u for u in used if u not in allow)
    print(" ".join(bad) if bad else "none (%d calls used)" % len(used))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "notify-listen":
        notify_listen(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "syscalls":
        sys.exit(syscalls(sys.argv[2], sys.argv[3]))
