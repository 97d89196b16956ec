"""Built-in task handlers; importing this package registers them."""

from pipefleet.tasks import audio, embeddings, generation, legacy, multimodal, text, vision  # noqa: F401
