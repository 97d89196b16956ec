"""The local Ray that the job and the endpoint start and stop."""

import subprocess
import sys

# In a process of its own: the tier's session-wide Ray must not be the one stopped.
SCRIPT = """
import psutil, ray
from pipefleet.local_ray import start_local_ray, stop_local_ray

start_local_ray("pipefleet-test", spare_cpus=1)
cpus = ray.cluster_resources()["CPU"]
processes = psutil.Process().children(recursive=True)
monitors = [p for p in processes if "autoscaler/_private/monitor.py" in " ".join(p.cmdline())]
stop_local_ray()
psutil.wait_procs(processes, timeout=10)
left = [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
print(int(cpus), len(processes), len(monitors), ray.is_initialized(), left)
"""


def test_the_local_ray_has_a_spare_cpu_and_stops_every_process_it_started():
    import psutil

    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    cpus, processes, monitors, initialized, left = result.stdout.split(maxsplit=4)
    assert int(cpus) == (psutil.cpu_count() or 1) + 1
    assert int(processes) >= 4 and int(monitors) == 1  # GCS, raylet, agents... and the autoscaler monitor
    assert initialized == "False" and left.strip() == "[]"
