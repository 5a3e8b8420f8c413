"""Loads an exported dinotrain teacher into the reference-layout VisionTransformer with
strict=True and runs it: the check that PyTorch users can use the export.

usage: /usr/bin/python3 load_export.py TEACHER.pth HEADS
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.environ["DINO_SOURCE_ROOT"], "tests", "worker", "dino"))
import reference_dino  # noqa: E402

path, heads = sys.argv[1], int(sys.argv[2])
state = torch.load(path, map_location="cpu")
embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
model = reference_dino.VisionTransformer(img_size=grid * patch, patch_size=patch,
                                         in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                                         num_heads=heads)
model.load_state_dict(state, strict=True)
model.eval()
with torch.no_grad():
    out = model(torch.randn(2, in_chans, grid * patch, grid * patch))
assert out.shape == (2, embed_dim), out.shape
assert torch.isfinite(out).all()
print(f"strict load OK: dim {embed_dim}, depth {depth}, patch {patch}, grid {grid}")
