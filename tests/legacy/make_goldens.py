"""Write the goldens of the tasks transformers 5 removed, with transformers 4.57's own pipelines.

Run it under transformers 4.57 (not the project's environment), from the repository root::

    python3 -m venv /tmp/tf457
    /tmp/tf457/bin/pip install torch pillow "transformers==4.57.*"
    /tmp/tf457/bin/python -m tests.legacy.make_goldens

It builds tiny random models (seeded) into ``tests/legacy/models/``, runs
``pipeline(task, model=folder)`` on every case of ``tests/legacy/cases.py``, one input per
call as a user would, and writes ``tests/legacy/goldens/<task>.json``. The models are
committed with the goldens, so the comparison never depends on random initialisation.
Rerun it only when a case or a model changes, and commit both.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import pipeline

from tests.legacy.cases import CASES, VQA_ANSWERS, words
from tests.legacy.images import draw

HERE = Path(__file__).parent
MODELS = HERE / "models"
GOLDENS = HERE / "goldens"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tokenizer(max_length: int) -> Any:
    """A WordPiece tokenizer whose vocabulary is the cases' words, letters and punctuation."""
    pieces = [*string.ascii_lowercase, *string.digits, *string.punctuation]
    vocab = [*SPECIALS, *pieces, *(f"##{c}" for c in string.ascii_lowercase + string.digits)]
    vocab += [word for word in words() if word not in vocab]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n")
        return transformers.BertTokenizerFast(vocab_file=str(path), model_max_length=max_length)


def question_answering(folder: Path) -> None:
    tok = tokenizer(max_length=128)
    config = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    _save(transformers.BertForQuestionAnswering(config), [tok], folder)


def seq2seq(folder: Path) -> None:
    """A tiny T5 for summarization and translation, with T5's task prefixes and a task default."""
    tok = tokenizer(max_length=128)
    config = transformers.T5Config(
        vocab_size=tok.vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
        decoder_start_token_id=tok.pad_token_id,
        task_specific_params={
            "summarization": {"prefix": "summarize: ", "min_length": 3, "no_repeat_ngram_size": 3},
            "translation_en_to_fr": {"prefix": "translate English to French: "},
        },
    )
    _save(transformers.T5ForConditionalGeneration(config), [tok], folder)


def visual_question_answering(folder: Path) -> None:
    tok = tokenizer(max_length=40)
    config = transformers.ViltConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        max_position_embeddings=40,
        num_labels=len(VQA_ANSWERS),
        id2label=dict(enumerate(VQA_ANSWERS)),
        label2id={a: i for i, a in enumerate(VQA_ANSWERS)},
    )
    images = transformers.ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=8)
    _save(transformers.ViltForQuestionAnswering(config), [tok, images], folder)


def _save(model: Any, processors: list[Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(folder)
    for processor in processors:
        processor.save_pretrained(folder)


BUILDERS = {
    "question-answering": ("qa", question_answering),
    "summarization": ("t5", seq2seq),
    "translation_en_to_fr": ("t5", seq2seq),
    "visual-question-answering": ("vilt", visual_question_answering),
}


def run_case(pipe: Any, task: str, inputs: Any, params: dict[str, Any]) -> Any:
    if task == "question-answering":
        return pipe(question=inputs["question"], context=inputs["context"], **params)
    if task == "visual-question-answering":
        return pipe(image=draw(inputs["image"]), question=inputs["question"], **params)
    return pipe(inputs, **params)


def main() -> None:
    assert transformers.__version__.startswith("4.57."), f"run under transformers 4.57, not {transformers.__version__}"
    GOLDENS.mkdir(parents=True, exist_ok=True)
    built: set[str] = set()
    for task, cases in CASES.items():
        name, build = BUILDERS[task]
        if name not in built:
            torch.manual_seed(0)
            build(MODELS / name)
            built.add(name)
        pipe = pipeline(task, model=str(MODELS / name), device="cpu")
        rows = [
            {"name": case, "inputs": inputs, "params": params, "output": run_case(pipe, task, inputs, params)}
            for case, inputs, params in cases
        ]
        golden = {"task": task, "model": name, "transformers": transformers.__version__, "cases": rows}
        (GOLDENS / f"{task}.json").write_text(json.dumps(golden, indent=1) + "\n")
        print(f"{task}: {len(rows)} cases -> {GOLDENS / (task + '.json')}")


if __name__ == "__main__":
    main()
