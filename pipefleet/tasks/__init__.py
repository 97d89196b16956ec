"""Built-in task handlers, one module per task family (shared helpers in ``common``); importing this
package registers them."""

from pipefleet.tasks import (  # noqa: F401
    audio,
    embeddings,
    generation,
    multimodal,
    ranking,
    removed_in_v5,
    similarity,
    text,
    vision,
)
