"""Summarise a `py-spy record --format raw` file: inclusive and self samples per function.

    python bench/profile_summary.py PROFILE.txt [THREAD_SUBSTRING] [TOP]
"""

import collections
import re
import sys


def main():
    path = sys.argv[1]
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    inclusive, own, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        thread = re.sub(r"\d+", "N", frames[0])
        threads[thread] += int(count)
        if only not in frames[0]:
            continue
        n = int(count)
        total += n
        names = [re.sub(r":\d+\)", ")", f) for f in frames[1:]]
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    print("samples per thread:", dict(threads.most_common()))
    print(f"\n{total} samples in threads matching {only!r}\n--- inclusive ---")
    for name, n in inclusive.most_common(top):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("--- self ---")
    for name, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
