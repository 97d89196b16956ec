"""A peer for bench/batch.py: the ten-line script an embeddings user writes instead of a job.

    .venv/bin/python bench/peer_sentence_transformers.py CORPUS.parquet OUT.parquet [--threads 2] [--bf16]

Reads the corpus, encodes its texts with sentence-transformers (mean pooling, normalised, batches of
64, which sentence-transformers sorts by length itself), writes the rows with their embeddings, and
prints one JSON line: rows, and the seconds spent loading and encoding.
"""

import argparse
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sentence_transformers import SentenceTransformer

parser = argparse.ArgumentParser()
parser.add_argument("corpus")
parser.add_argument("output")
parser.add_argument("--model", required=True)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--bf16", action="store_true", help="weights in bfloat16 (model_kwargs dtype)")
args = parser.parse_args()

started = time.perf_counter()
torch.set_num_threads(args.threads)
model_kwargs = {"dtype": torch.bfloat16} if args.bf16 else {}
model = SentenceTransformer(args.model, device="cpu", model_kwargs=model_kwargs)
table = pq.read_table(args.corpus)
loaded = time.perf_counter()
vectors = model.encode(table.column("text").to_pylist(), batch_size=64, normalize_embeddings=True)
encoded = time.perf_counter()
column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype("float32").ravel()), vectors.shape[1])
pq.write_table(table.append_column("embedding", column), args.output)
print(json.dumps({"rows": table.num_rows, "load_s": loaded - started, "encode_s": encoded - loaded}))
