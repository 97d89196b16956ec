"""The local Ray that ``pipefleet annotate`` and ``pipefleet serve`` start when no cluster is named.

Both start it the same way and stop it the same way; on a cluster neither calls these.
"""

from __future__ import annotations

import os


def start_local_ray(namespace: str, spare_cpus: int) -> None:
    """A Ray of this machine alone, with ``spare_cpus`` logical CPUs more than the cores.

    The spare slots are for the work beside the model's actors or replicas (Ray Data's read and
    write tasks, a retrieval index), which would otherwise wait behind actors that hold every core.
    The dashboard stays off: nobody browses a Ray that lives as long as one command. ``address="local"``:
    a Ray of its own even where ``ray start`` left one running on this machine, which ``ray.init()``
    would otherwise join (and refuse, since a joining driver cannot set ``num_cpus``).
    """
    import ray

    ray.init(address="local", namespace=namespace, include_dashboard=False, num_cpus=(os.cpu_count() or 1) + spare_cpus)


def stop_local_ray() -> None:
    """Stop the Ray that :func:`start_local_ray` started, its autoscaler monitor first.

    ``ray.shutdown()`` stops Ray's processes one kind after another, the GCS before the autoscaler
    monitor; the monitor answers SIGTERM by reporting its own end to the GCS that is already gone,
    and Ray waits its whole second of grace before it kills it (Ray 2.60: 1.0 s of the 1.4 s that
    ``ray.shutdown()`` took here). A Ray of one machine has nothing for the monitor to scale, so it
    is killed at once first. Ray's ``Node.kill_monitor`` is not public API: if it moves, the
    shutdown is only a second slower.
    """
    import ray

    try:
        from ray._private.worker import _global_node

        _global_node.kill_monitor(check_alive=False)
    except Exception:  # noqa: BLE001 - moved or already gone: ray.shutdown() stops it anyway, a second later
        pass
    ray.shutdown()
