#!/usr/bin/python3
"""Verify the DKIM signature of the message on stdin with python3-dkim (the
library behind Debian's dkimverify), answering its DNS query for the key
with the TXT record in the file named by argv[1]. Exit 0 if it verifies."""
import sys
import dkim

txt = open(sys.argv[1], "rb").read().strip()
asked = []
def dnsfunc(name, timeout=5):
    asked.append(name)
    return txt
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
print("asked", b",".join(asked).decode(), "verified" if ok else "FAILED")
sys.exit(0 if ok else 1)
