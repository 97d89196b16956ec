"""A peer for bench/serve.py: all-MiniLM-L6-v2 embeddings on LitServe, written as its docs and examples show.

    .venv/bin/python bench/peer_litserve.py MODEL_DIR --port 8001 [--threads 1] [--workers 1] [--fast-queue]

POST /predict {"inputs": "text"} or {"inputs": ["t1", ...]} -> {"embeddings": [[384 floats], ...]}.
bench/servers.py starts it as a subprocess (start_litserve).
"""

import argparse

import litserve as ls
import torch
from transformers import AutoModel, AutoTokenizer


class EmbeddingAPI(ls.LitAPI):
    def __init__(self, model_path: str, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.model_path, self.threads = model_path, threads

    def setup(self, device):
        torch.set_num_threads(self.threads)  # runs in the spawned inference worker, not in this process
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModel.from_pretrained(self.model_path).to(device).eval()

    def decode_request(self, request):
        inputs = request["inputs"]
        return [inputs] if isinstance(inputs, str) else inputs

    def batch(self, inputs):
        # One list of texts per request: a single forward pass over all of them, split again in unbatch.
        return [text for texts in inputs for text in texts], [len(texts) for texts in inputs]

    def predict(self, x):
        texts, sizes = x
        encoded = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).tolist(), sizes

    def unbatch(self, output):
        vectors, sizes = output
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return [vectors[start : start + size] for start, size in zip(starts, sizes)]

    def encode_response(self, output):
        return {"embeddings": output}


if __name__ == "__main__":  # the inference workers are spawned: they re-import this file
    parser = argparse.ArgumentParser()
    parser.add_argument("model_path")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per inference worker")
    parser.add_argument("--workers", type=int, default=1, help="inference worker processes (workers_per_device)")
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ between the HTTP and inference processes")
    args = parser.parse_args()
    api = EmbeddingAPI(args.model_path, args.threads, max_batch_size=32, batch_timeout=0.005)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers, fast_queue=args.fast_queue)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)
