"""Prints N distinct loopback TCP ports in [LO, HI) that are free right now.

Test scripts take ports from fixed ranges below the kernel's ephemeral range
(32768+): a port found free there cannot be handed to another process's
connect() or bind(0) before the test's own daemon binds it, which a port
from bind(0), freed and reused, can. Ranges in use: 10000-14999 the C
TEE-DS network fixture, 15000-19999 TEE-DS test scripts, 20000-31999 chain
and daemon ports of scripts. Usage: free_ports.py N [LO HI]
"""
import random
import socket
import sys

n = int(sys.argv[1])
lo, hi = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (15000, 20000)
got = []
for _ in range(10000):
    if len(got) == n:
        break
    p = random.randrange(lo, hi)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    got.append(p)
if len(got) != n:
    sys.exit("no %d free ports in %d-%d" % (n, lo, hi - 1))
print(" ".join(map(str, got)))
