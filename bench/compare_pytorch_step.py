#!/usr/bin/python3
"""The DINO training step of bench_train_step, written in PyTorch, for the C++/PyTorch ratio.

Same models (the reference-layout ViT and DINOHead of tests/worker/dino/reference_dino.py, with the
reference init), same crops and batch, same step as main_dino.train_one_epoch: teacher forward on
the 2 global crops, student forward on all crops (one backbone pass per resolution), DINO loss,
backward, per-parameter clipping at 3.0, AdamW with the two groups, EMA with foreach ops, center
update. Runs on the CPU with the same number of threads as the C++ benchmark (all cores).

    /usr/bin/python3 bench/compare_pytorch_step.py [--configs tiny28,small224] [--iters-tiny 4]
                                                   [--iters-small 2] [--threads N]

Prints one line per configuration: ms/step, process CPU ms/step (all threads; comparable with
bench_train_step's CPU column on a shared machine), images/s and GFLOP/s (model FLOPs counted as
in bench_train_step).
"""
import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "worker", "dino"))
import reference_dino as ref  # noqa: E402

CONFIGS = {
    # name: (dim, depth, heads, patch, channels, global, local, n_local, batch)
    "tiny28": (192, 12, 3, 4, 1, 28, 12, 6, 64),
    "small224": (384, 12, 6, 16, 3, 224, 96, 8, 32),
}
HEAD = dict(out_dim=65536, hidden_dim=2048, bottleneck_dim=256, nlayers=3)


def trunc_normal_(t, std=0.02):
    with torch.no_grad():
        return torch.nn.init.trunc_normal_(t, std=std, a=-2.0, b=2.0)


def init_weights(m):
    if isinstance(m, torch.nn.Linear):
        trunc_normal_(m.weight)
        if m.bias is not None:
            torch.nn.init.zeros_(m.bias)
    elif isinstance(m, torch.nn.LayerNorm):
        torch.nn.init.ones_(m.weight)
        torch.nn.init.zeros_(m.bias)


def build(cfg, drop_path_rate):
    dim, depth, heads, patch, chans, glob, _, _, _ = cfg
    vit = ref.VisionTransformer(glob, patch, chans, dim, depth, heads, 4.0, drop_path_rate)
    trunc_normal_(vit.pos_embed)
    trunc_normal_(vit.cls_token)
    vit.apply(init_weights)
    head = ref.DINOHead(dim, **HEAD)
    head.mlp.apply(init_weights)
    torch.nn.init.kaiming_uniform_(head.last_layer.weight_v, a=5 ** 0.5)
    return ref.MultiCropWrapper(vit, head)


def flops(cfg):
    dim, depth, _, patch, chans, glob, loc, n_local, batch = cfg

    def backbone(size):
        p = (size // patch) ** 2
        n = p + 1
        per_block = 2 * n * dim * 3 * dim + 4 * n * n * dim + 2 * n * dim * dim + 4 * n * dim * 4 * dim
        return 2 * p * chans * patch * patch * dim + depth * per_block

    h = HEAD
    head = (2 * dim * h["hidden_dim"] + 2 * h["hidden_dim"] ** 2 + 2 * h["hidden_dim"] * h["bottleneck_dim"]
            + 2 * h["bottleneck_dim"] * h["out_dim"])
    g, l = backbone(glob) + head, backbone(loc) + head
    return batch * (3 * (2 * g + n_local * l) + 2 * g)


def run(name, iters, threads):
    cfg = CONFIGS[name]
    _, _, _, _, chans, glob, loc, n_local, batch = cfg
    torch.manual_seed(0)
    student, teacher = build(cfg, 0.1), build(cfg, 0.0)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    params_t, params_s = list(teacher.parameters()), [p.detach() for p in student.parameters()]
    optimizer = torch.optim.AdamW(ref.get_params_groups(student))
    center = torch.zeros(1, HEAD["out_dim"])
    crops = [torch.randn(batch, chans, glob, glob) for _ in range(2)]
    crops += [torch.randn(batch, chans, loc, loc) for _ in range(n_local)]
    ncrops = len(crops)

    def step(it):
        nonlocal center
        for i, g in enumerate(optimizer.param_groups):
            g["lr"] = 0.0005 * batch / 256
            if i == 0:
                g["weight_decay"] = 0.04
        teacher_output = teacher(crops[:2])
        student_output = student(crops)
        loss = ref.dino_loss(student_output, teacher_output, center, ncrops, 0.1, 0.04)
        if not torch.isfinite(loss):
            raise SystemExit("non-finite loss")
        optimizer.zero_grad()
        loss.backward()
        ref.clip_gradients(student, 3.0)
        if it < 1:  # freeze_last_layer = 1 epoch
            for n, p in student.named_parameters():
                if "last_layer" in n:
                    p.grad = None
        optimizer.step()
        with torch.no_grad():
            torch._foreach_mul_(params_t, 0.996)
            torch._foreach_add_(params_t, params_s, alpha=1 - 0.996)
        center = ref.update_center(center, teacher_output.detach(), 0.9)

    step(0)  # untimed warm-up, as in bench_train_step
    start, cpu_start = time.perf_counter(), time.process_time()
    for it in range(iters):
        step(it + 1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print("pytorch %-9s threads %d  iters %d  %8.1f ms/step  %8.1f cpu-ms/step  %8.2f images/s  "
          "%8.1f GFLOP/s" % (name, threads, iters, 1000 * seconds / iters, 1000 * cpu / iters,
                             batch * iters / seconds, flops(cfg) * iters / seconds / 1e9), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny28,small224")
    ap.add_argument("--iters-tiny", type=int, default=4)
    ap.add_argument("--iters-small", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("torch", torch.__version__, "threads", torch.get_num_threads(), flush=True)
    for name in args.configs.split(","):
        run(name, args.iters_tiny if name == "tiny28" else args.iters_small, args.threads)


if __name__ == "__main__":
    main()
