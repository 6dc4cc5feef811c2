"""Generates runtime_py.inc (C string literal lines) from runtime.py.

Usage: python3 gen_runtime.py runtime.py > runtime_py.inc
tests/executor/test_runtime_sync.sh checks that the two agree."""
import sys

src = open(sys.argv[1], encoding='utf-8').read()
print('/* Generated from runtime.py by gen_runtime.py: do not edit. */')
for line in src.splitlines():
    esc = line.replace('\\', '\\\\').replace('"', '\\"')
    print('"%s\\n",' % esc)
