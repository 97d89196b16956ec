"""pipefleet: Hugging Face pipelines at cluster scale, as a Ray Data job and a Ray Serve endpoint.

The core (this package) knows nothing of Ray Data or HTTP: a spec (:mod:`pipefleet.spec`),
task handlers (:mod:`pipefleet.handler`, :mod:`pipefleet.tasks`) looked up by name
(:mod:`pipefleet.registry`), model loading (:mod:`pipefleet.models`) and one error taxonomy
(:mod:`pipefleet.errors`). ``jobs/`` and ``serve/`` adapt it.
"""

__version__ = "0.1.0"
