"""Reference outputs of a CLIP text encoder for test/nn/models/clip-text.test.ts.

A plain-PyTorch CLIP text transformer under transformers' parameter names and semantics
(CLIPTextEmbeddings, pre-LN CLIPEncoderLayer, quick_gelu, the causal mask plus the padding mask,
each masked score set to torch.finfo(dtype).min, pooling at the first eos_token_id), with a small
random config and random weights. Writes test/fixtures/clip-text/:

  config.json          transformers' CLIPTextConfig keys
  model.safetensors    the weights (F32)
  io.safetensors       input_ids, attention_mask (I32); last_hidden_state, pooler_output (F64,
                       computed in float64 from the float32 weights)

Run with Debian's python3 and python3-torch: /usr/bin/python3 scripts/ref/clip_text_ref.py
"""

import json
import os
import re
import struct
import sys

import torch

torch.set_num_threads(1)
torch.manual_seed(20240611)

CONFIG = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": 40,
    "hidden_size": 24,
    "intermediate_size": 40,
    "projection_dim": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 12,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 3,
    "torch_dtype": "float32",
}


def random_weights(c):
    """Weights of every parameter, rounded to float32, with scales that keep activations O(1)."""
    d, f = c["hidden_size"], c["intermediate_size"]
    w = {}

    def linear(name, n_in, n_out):
        w[f"{name}.weight"] = torch.randn(n_out, n_in) / n_in**0.5
        w[f"{name}.bias"] = 0.1 * torch.randn(n_out)

    def norm(name):
        w[f"{name}.weight"] = 1 + 0.1 * torch.randn(d)
        w[f"{name}.bias"] = 0.1 * torch.randn(d)

    w["text_model.embeddings.token_embedding.weight"] = torch.randn(c["vocab_size"], d)
    w["text_model.embeddings.position_embedding.weight"] = 0.5 * torch.randn(
        c["max_position_embeddings"], d
    )
    for i in range(c["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            linear(f"{p}.self_attn.{proj}", d, d)
        norm(f"{p}.layer_norm1")
        linear(f"{p}.mlp.fc1", d, f)
        linear(f"{p}.mlp.fc2", f, d)
        norm(f"{p}.layer_norm2")
    norm("text_model.final_layer_norm")
    return {k: v.float() for k, v in w.items()}


def layer_norm(x, w, name, eps):
    return torch.nn.functional.layer_norm(
        x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], eps
    )


def linear(x, w, name):
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def clip_text_forward(c, w, input_ids, attention_mask):
    """transformers' CLIPTextTransformer.forward, written out."""
    b, l = input_ids.shape
    d, heads = c["hidden_size"], c["num_attention_heads"]
    dh = d // heads
    eps = c["layer_norm_eps"]
    dtype = w["text_model.final_layer_norm.weight"].dtype
    lowest = torch.finfo(dtype).min
    tok = w["text_model.embeddings.token_embedding.weight"]
    pos = w["text_model.embeddings.position_embedding.weight"]
    h = tok[input_ids.long()] + pos[:l]
    # _create_4d_causal_attention_mask and _prepare_4d_attention_mask, added to the scores.
    causal = torch.full((l, l), lowest, dtype=dtype).triu(1)[None, None]
    inverted = 1.0 - attention_mask[:, None, None, :].to(dtype)
    padding = inverted.masked_fill(inverted.bool(), lowest)
    for i in range(c["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}"
        x = layer_norm(h, w, f"{p}.layer_norm1", eps)

        def split(t):
            return t.view(b, l, heads, dh).transpose(1, 2)

        q = split(linear(x, w, f"{p}.self_attn.q_proj"))
        k = split(linear(x, w, f"{p}.self_attn.k_proj"))
        v = split(linear(x, w, f"{p}.self_attn.v_proj"))
        scores = q @ k.transpose(-1, -2) * dh**-0.5 + causal + padding
        a = torch.softmax(scores, dim=-1) @ v
        a = a.transpose(1, 2).reshape(b, l, d)
        h = h + linear(a, w, f"{p}.self_attn.out_proj")
        x = layer_norm(h, w, f"{p}.layer_norm2", eps)
        x = linear(x, w, f"{p}.mlp.fc1")
        x = x * torch.sigmoid(1.702 * x)  # quick_gelu
        h = h + linear(x, w, f"{p}.mlp.fc2")
    last = layer_norm(h, w, "text_model.final_layer_norm", eps)
    first_eos = (input_ids == c["eos_token_id"]).int().argmax(dim=-1)
    pooled = last[torch.arange(b), first_eos]
    return last, pooled


def write_safetensors(path, tensors):
    """The safetensors layout: u64 header size, JSON header (space-padded to 8 bytes), data."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32"}
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": names[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    out = os.path.normpath(os.path.join(root, "..", "..", "test", "fixtures", "clip-text"))
    if len(sys.argv) > 1:
        out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    c = CONFIG
    w32 = random_weights(c)
    l = c["max_position_embeddings"]
    pad, bos, eos, unk = c["pad_token_id"], c["bos_token_id"], c["eos_token_id"], 1

    def row(words):
        ids = [bos] + words + [eos]
        return ids + [pad] * (l - len(ids)), [1] * len(ids) + [0] * (l - len(ids))

    def words(n):
        return torch.randint(4, c["vocab_size"], (n,)).tolist()

    rows = [
        row(words(l - 2)),  # no padding
        row(words(3)),
        row([]),  # the empty prompt: start, end, padding
        row(words(2) + [unk] + words(3)),
    ]
    input_ids = torch.tensor([r[0] for r in rows], dtype=torch.int32)
    attention_mask = torch.tensor([r[1] for r in rows], dtype=torch.int32)
    w64 = {k: v.double() for k, v in w32.items()}
    with torch.no_grad():
        last, pooled = clip_text_forward(c, w64, input_ids, attention_mask)
    # Keys sorted as transformers writes them, one per line (the form prettier keeps).
    lines = [f"  {json.dumps(k)}: {re.sub(r'e-0+', 'e-', json.dumps(c[k]))}" for k in sorted(c)]
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    write_safetensors(os.path.join(out, "model.safetensors"), w32)
    write_safetensors(
        os.path.join(out, "io.safetensors"),
        {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "last_hidden_state": last,
            "pooler_output": pooled,
        },
    )
    print(f"wrote {out}: last_hidden_state {list(last.shape)}, |x| max {last.abs().max():.3f}")


if __name__ == "__main__":
    main()
