"""Runs a command and prints its wall seconds and peak RSS in MB (of the command's process tree).
usage: measure.py CMD [ARGS...]"""
import resource
import subprocess
import sys
import time

start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{elapsed:.3f} {peak:.0f}")
sys.exit(code)
