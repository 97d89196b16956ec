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

from tests.legacy.cases import CASES, LANGUAGES, VQA_ANSWERS, texts, words
from tests.legacy.images import draw

HERE = Path(__file__).parent
MODELS = HERE / "models"
GOLDENS = HERE / "goldens"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tokenizer(max_length: int, **options: Any) -> Any:
    """A WordPiece tokenizer whose vocabulary is the cases' words, letters and punctuation."""
    pieces = [*string.ascii_lowercase, *string.digits, *string.punctuation]
    vocab = [*SPECIALS, *pieces, *(f"##{c}" for c in string.ascii_lowercase + string.digits)]
    vocab += [word for word in words() if word not in vocab]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n")
        return transformers.BertTokenizerFast(vocab_file=str(path), model_max_length=max_length, **options)


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


def multilingual_seq2seq(folder: Path) -> None:
    """A tiny NLLB-style translator: M2M100 weights, an NllbTokenizerFast with three language codes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    # NLLB's own pre-tokenizer and decoder, which transformers 5 rebuilds when it loads the tokenizer
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bpe.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    bpe.train_from_iterator([*texts(), string.ascii_letters + string.digits + string.punctuation], trainer)
    tok = transformers.NllbTokenizerFast(
        tokenizer_object=bpe, additional_special_tokens=LANGUAGES, src_lang=LANGUAGES[0], model_max_length=128
    )
    config = transformers.M2M100Config(
        vocab_size=len(tok),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
        # Wide weights and unscaled embeddings, so that the target language changes what the random model writes
        init_std=0.2,
        scale_embedding=False,
    )
    _save(transformers.M2M100ForConditionalGeneration(config), [tok], folder)


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


def generative_visual_question_answering(folder: Path) -> None:
    """A tiny BLIP that writes its answers (BlipForQuestionAnswering)."""
    tok = tokenizer(max_length=40, model_input_names=["input_ids", "attention_mask"])  # as BLIP's own
    spread = 0.2  # wide enough that the image changes what the random model writes
    text = {
        "vocab_size": tok.vocab_size,
        "hidden_size": 32,
        "encoder_hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 512,  # room for 4.57's default of 256 new tokens
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.cls_token_id,
        "sep_token_id": tok.sep_token_id,
        "eos_token_id": tok.sep_token_id,
        "initializer_range": spread,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
        "initializer_range": spread,
    }
    config = transformers.BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    images = transformers.BlipImageProcessor(size={"height": 32, "width": 32})
    _save(transformers.BlipForQuestionAnswering(config), [tok, images], folder)


def _save(model: Any, processors: list[Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(folder)
    for processor in processors:
        processor.save_pretrained(folder)


# Golden name (tests.legacy.cases.CASES) -> the 4.57 task, the model's folder under models/, its builder.
BUILDERS = {
    "question-answering": ("question-answering", "qa", question_answering),
    "summarization": ("summarization", "t5", seq2seq),
    "translation_en_to_fr": ("translation_en_to_fr", "t5", seq2seq),
    "translation-multilingual": ("translation", "nllb", multilingual_seq2seq),
    "visual-question-answering": ("visual-question-answering", "vilt", visual_question_answering),
    "visual-question-answering-generative": ("visual-question-answering", "blip", generative_visual_question_answering),
}
# 4.57's visual-question-answering ignored generation parameters in a call: they went to pipeline().
_VQA_CALL_PARAMS = {"top_k", "padding", "truncation", "timeout"}


def run_case(task: str, folder: Path, inputs: Any, params: dict[str, Any]) -> Any:
    """What 4.57 returns for one input, with the parameters given where 4.57 used them."""
    if task == "visual-question-answering":
        made_with = {key: value for key, value in params.items() if key not in _VQA_CALL_PARAMS}
        pipe = pipeline(task, model=str(folder), device="cpu", **made_with)
        call = {key: value for key, value in params.items() if key in _VQA_CALL_PARAMS}
        return pipe(image=draw(inputs["image"]), question=inputs["question"], **call)
    pipe = pipeline(task, model=str(folder), device="cpu")
    if task == "question-answering":
        return pipe(question=inputs["question"], context=inputs["context"], **params)
    return pipe(inputs, **params)


def main() -> None:
    assert transformers.__version__.startswith("4.57."), f"run under transformers 4.57, not {transformers.__version__}"
    GOLDENS.mkdir(parents=True, exist_ok=True)
    built: set[str] = set()
    for golden_name, cases in CASES.items():
        task, name, build = BUILDERS[golden_name]
        if name not in built:
            torch.manual_seed(0)
            build(MODELS / name)
            built.add(name)
        rows = [
            {"name": case, "inputs": inputs, "params": params, "output": run_case(task, MODELS / name, inputs, params)}
            for case, inputs, params in cases
        ]
        golden = {"task": task, "model": name, "transformers": transformers.__version__, "cases": rows}
        (GOLDENS / f"{golden_name}.json").write_text(json.dumps(golden, indent=1) + "\n")
        print(f"{golden_name}: {len(rows)} cases -> {GOLDENS / (golden_name + '.json')}")


if __name__ == "__main__":
    main()
