"""Where the cores go during a job: CPU time of every thread of every process, from /proc.

    .venv/bin/python bench/threads.py [--rows 8000] [--actors 1] [--threads 2] [--lanes N]

Runs bench/batch.py's job on the mixed-length corpus (README command 1's layout by default) and reads
/proc/*/task/*/stat once a second. Prints, for the middle of the run (from 30 s after the start to
8 s before the end, so the start and the write of the last blocks are left out), each thread that
used more than 2% of a core: its share of a core, its involuntary context switches per second (how
often it was preempted), the CPU it last ran on, and its process. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.batch import corpus_file, job  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def threads_now() -> dict[tuple[str, str], dict[str, Any]]:
    """(pid, tid) -> the thread's name, its process's command line, CPU seconds, preemptions, last CPU."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
                status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                found[pid, tid] = {
                    "name": stat[stat.index("(") + 1 : stat.rindex(")")],
                    "process": command.strip()[:70],
                    "cpu_s": (int(fields[11]) + int(fields[12])) / TICKS,  # utime + stime
                    "preempted": int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0]),
                    "last_cpu": int(fields[36]),
                }
        except (OSError, IndexError, ValueError):  # the thread or process ended while being read
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPUs (and threads) per actor")
    parser.add_argument("--lanes", type=int, help="compute.lanes (default: one per CPU)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pipefleet-threads-"))
    corpus = corpus_file(args.rows, workdir)
    result: dict[str, Any] = {}
    running = threading.Thread(
        target=lambda: result.update(job(corpus, args.actors, args.threads, workdir, args.lanes)), daemon=True
    )
    started = time.time()
    running.start()
    samples = []
    while running.is_alive():
        samples.append((time.time() - started, threads_now()))
        time.sleep(1.0)
    print(json.dumps({key: value for key, value in result.items() if key != "output"}))
    end = time.time() - started - 8
    middle = [sample for sample in samples if 30 <= sample[0] <= end]
    if len(middle) < 2:
        sys.exit(f"the job ran {end + 8:.0f} s: too short for a middle from 30 s to 8 s before its end; add --rows")
    (first_s, first), (last_s, last) = middle[0], middle[-1]
    span = last_s - first_s
    rows = []
    for key, thread in last.items():
        if key in first and (share := (thread["cpu_s"] - first[key]["cpu_s"]) / span) > 0.02:
            preempted = (thread["preempted"] - first[key]["preempted"]) / span
            rows.append((share, thread, key, preempted))
    rows.sort(key=lambda row: row[0], reverse=True)
    print(f"from {first_s:.0f} to {last_s:.0f} s: threads over 2% of a core used {sum(r[0] for r in rows):.2f} cores")
    for share, thread, (pid, tid), preempted in rows:
        print(
            f"{share:5.2f} core  {thread['name']:16s} {pid:>7}/{tid:<7} preempted {preempted:5.0f}/s  "
            f"cpu{thread['last_cpu']}  {thread['process']}"
        )


if __name__ == "__main__":
    main()
