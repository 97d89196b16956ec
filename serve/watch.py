"""Saying what the endpoint waits for while Serve places replicas, instead of waiting in silence."""

from __future__ import annotations

from typing import Any

from pipefleet.spec import Spec
from serve.app import APP_NAME, route_app_name
from serve.route import ROUTE_DEPLOYMENT


class ReplicaWatch:
    """Each :meth:`news` call returns a line per route whose replicas began or stopped waiting for room,
    or whose count of them changed.

    A route's replicas wait for room when Serve is starting some and the cluster's free resources cannot
    hold one more: replicas not yet placed wait for a node (on a cluster that may autoscale, nodes may be
    on their way; on a local Ray nothing brings them), while the last one placed may still be loading.
    """

    def __init__(self, specs: list[Spec], autoscaler: bool, app_name: str = APP_NAME) -> None:
        self.specs, self.autoscaler, self.app_name = specs, autoscaler, app_name
        self.last: dict[str, tuple] = {}

    def news(self, replica_states: dict[str, dict[str, int]], free: dict[str, float]) -> list[str]:
        """``replica_states``: per route application, its replicas counted by state; ``free``: Ray's free resources."""
        lines = []
        for spec in self.specs:
            states = replica_states.get(route_app_name(self.app_name, spec.route), {})
            starting, running = states.get("STARTING", 0), states.get("RUNNING", 0)
            need = {"CPU": spec.serve.num_cpus, "GPU": spec.serve.num_gpus}
            short = {name: amount for name, amount in need.items() if amount and free.get(name, 0.0) < amount}
            state = ("waiting", starting, running) if starting and short else ("placed",)
            was = self.last.get(spec.route, ("placed",))
            self.last[spec.route] = state
            if state == was:
                continue
            if state[0] == "placed":
                lines.append(f"{spec.route}: {running} replica(s) running; none waits for room")
                continue
            asks = " and ".join(f"{amount:g} {name}" for name, amount in need.items() if amount)
            has = ", ".join(f"{free.get(name, 0.0):g} {name}" for name in short)
            waits = (
                f"{spec.route}: {starting} replica(s) starting, {running} running; each asks for {asks}, "
                f"and the cluster has {has} free"
            )
            lines.append(
                f"waiting for the autoscaler: {waits}"
                if self.autoscaler
                else f"{waits}: nothing brings more to a local Ray; lower serve.autoscaling.max_replicas"
            )
        return lines


def replica_states(app_name: str = APP_NAME) -> dict[str, dict[str, int]]:
    """Per application of Serve, how many replicas of its route deployment are in each state."""
    from ray import serve

    found = {}
    for name, application in serve.status().applications.items():
        deployment = application.deployments.get(ROUTE_DEPLOYMENT)
        if name.startswith(app_name) and deployment is not None:
            found[name] = {_name(state): count for state, count in deployment.replica_states.items()}
    return found


def _name(state: Any) -> str:
    return str(getattr(state, "value", state))
