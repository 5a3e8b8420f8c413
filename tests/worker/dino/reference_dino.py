#!/usr/bin/python3
"""Test-only Python reference of DINO, written from docs/dino.md and the published
implementation's structure (vision_transformer.py, main_dino.py, utils.py).

Run by the C++ parity tests under /usr/bin/python3 (Debian's torch 1.13):

    reference_dino.py DIR

For every DIR/<case>_in.pt the C++ test wrote, it computes the reference results and writes
DIR/<case>_out.pt (a dict of tensors). Case kinds are given by the "kind" entry.
"""
import glob
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- backbone
def drop_path(x, drop_prob=0.0, training=False):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)
    random_tensor.floor_()
    return x.div(keep_prob) * random_tensor


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.drop_path = drop_path
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """Reference-layout ViT: its state-dict keys are those of the published implementation."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio=4.0,
                 drop_path_rate=0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def interpolate_pos_encoding(self, x, w, h):
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_embed.patch_size
        h0 = h // self.patch_embed.patch_size
        w0, h0 = w0 + 0.1, h0 + 0.1
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
            mode="bicubic",
        )
        assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def forward(self, x):
        B, nc, w, h = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


# ----------------------------------------------------------------------------- head
class WeightNormLinear(nn.Module):
    """weight = g * v / ||v|| per output row (torch.nn.utils.weight_norm, dim=0)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1))
        self.weight_v = nn.Parameter(torch.empty(out_dim, in_dim))

    def forward(self, x):
        return F.linear(x, self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True)))


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_dim, bottleneck_dim, nlayers, norm_last_layer=True):
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        idx_crops = torch.cumsum(torch.unique_consecutive(
            torch.tensor([inp.shape[-1] for inp in x]), return_counts=True)[1], 0)
        start_idx, output = 0, torch.empty(0)
        for end_idx in idx_crops:
            _out = self.backbone(torch.cat(x[start_idx:end_idx]))
            output = torch.cat((output, _out))
            start_idx = end_idx
        return self.head(output)


# ----------------------------------------------------------------------------- loss, schedules
def dino_loss(student_output, teacher_output, center, ncrops, student_temp, teacher_temp):
    student_out = (student_output / student_temp).chunk(ncrops)
    teacher_out = F.softmax((teacher_output - center) / teacher_temp, dim=-1).detach().chunk(2)
    total_loss, n_loss_terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
            total_loss += loss.mean()
            n_loss_terms += 1
    return total_loss / n_loss_terms


@torch.no_grad()
def update_center(center, teacher_output, momentum, world_size=1, mean_given=False):
    """DINOLoss.update_center: sum over rows, all-reduced, divided by rows * world size."""
    if mean_given:
        batch_center = teacher_output
    else:
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        batch_center = batch_center / (len(teacher_output) * world_size)
    return center * momentum + batch_center * (1 - momentum)


def linspace(start, stop, num, i):
    if num == 1:
        return start
    if i == num - 1:
        return stop
    return start + i * (stop - start) / (num - 1)


def cosine_scheduler(base, final, it, total, warmup_iters=0, warmup_start=0.0):
    if it < warmup_iters:
        return linspace(warmup_start, base, warmup_iters, it)
    n = total - warmup_iters
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * (it - warmup_iters) / n))


def teacher_temperature(epoch, warmup_temp, temp, warmup_epochs):
    if epoch >= warmup_epochs:
        return temp
    return linspace(warmup_temp, temp, warmup_epochs, epoch)


# ----------------------------------------------------------------------------- building
def i(d, key):
    return int(d[key].item())


def f(d, key):
    return float(d[key].item())


def build_wrapper(d, drop_path_rate=0.0):
    backbone = VisionTransformer(i(d, "cfg.image_size"), i(d, "cfg.patch_size"), i(d, "cfg.in_channels"),
                                 i(d, "cfg.dim"), i(d, "cfg.depth"), i(d, "cfg.heads"),
                                 f(d, "cfg.mlp_ratio"), drop_path_rate)
    head = DINOHead(i(d, "cfg.dim"), i(d, "cfg.out_dim"), i(d, "cfg.hidden_dim"), i(d, "cfg.bottleneck_dim"),
                    i(d, "cfg.nlayers"), norm_last_layer=bool(i(d, "cfg.norm_last_layer")))
    return MultiCropWrapper(backbone, head)


def weights(d, prefix="w."):
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- cases
def case_forward(d):
    model = build_wrapper(d)
    model.load_state_dict(weights(d), strict=True)
    model.eval()
    with torch.no_grad():
        out = {
            "feat_global": model.backbone(d["in.global"]),
            "feat_local": model.backbone(d["in.local"]),
            "feat_small": model.backbone(d["in.small"]),
        }
        out["head"] = model.head(out["feat_global"])
        out["multicrop"] = model([d["in.global"], d["in.global2"], d["in.local"], d["in.local2"]])
    return out


def collapse_statistics(student_output, teacher_output, center, ncrops, student_temp, teacher_temp):
    """docs/dino.md, "Monitoring": written directly from the definitions, not via the loss."""
    t = F.softmax((teacher_output - center) / teacher_temp, dim=-1)
    log_t = F.log_softmax((teacher_output - center) / teacher_temp, dim=-1)
    entropy = -(t * log_t).sum(-1).mean()
    mean_t = t.mean(0)
    batch_entropy = -(mean_t * torch.log(mean_t)).sum()
    log_s = F.log_softmax(student_output / student_temp, dim=-1).chunk(ncrops)
    t_chunks, log_t_chunks = t.chunk(2), log_t.chunk(2)
    kls = []
    for iq in range(2):
        for v in range(ncrops):
            if v != iq:
                kls.append((t_chunks[iq] * (log_t_chunks[iq] - log_s[v])).sum(-1).mean())
    kl = torch.stack(kls).mean()
    return torch.stack([entropy, batch_entropy, kl]).double()


def case_loss(d):
    ncrops = i(d, "ncrops")
    args = (d["student"], d["teacher"], d["center"], ncrops, f(d, "student_temp"), f(d, "teacher_temp"))
    loss = dino_loss(*args)
    # The other ranks' teacher outputs: the all-reduced sum covers them too.
    all_teacher = torch.cat([d["teacher"], d["other_ranks_teacher"]]) if "other_ranks_teacher" in d \
        else d["teacher"]
    world = i(d, "world_size")
    center = update_center(d["center"], all_teacher.sum(0, keepdim=True) / (len(d["teacher"]) * world),
                           f(d, "center_momentum"), mean_given=True)
    return {"loss": loss.reshape(1), "center": center, "stats": collapse_statistics(*args)}


def clip_gradients(model, clip):
    """utils.clip_gradients: each parameter tensor's own norm; returns how many were scaled."""
    clipped = 0
    for p in model.parameters():
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
                clipped += 1
    return clipped


def get_params_groups(model):
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def case_step(d):
    """main_dino.train_one_epoch for `nsteps` iterations from iteration 0."""
    student = build_wrapper(d)
    teacher = build_wrapper(d)
    student.load_state_dict(weights(d), strict=True)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    ncrops = i(d, "ncrops")
    epochs, niter = i(d, "cfg.epochs"), i(d, "cfg.steps_per_epoch")
    total = epochs * niter
    base_lr = f(d, "cfg.lr") * i(d, "cfg.global_batch") / 256.0
    optimizer = torch.optim.AdamW(get_params_groups(student), foreach=False)
    center = torch.zeros(1, i(d, "cfg.out_dim"))
    out = {}
    for it in range(i(d, "nsteps")):
        epoch = it // niter
        lr = cosine_scheduler(base_lr, f(d, "cfg.min_lr"), it, total, i(d, "cfg.warmup_epochs") * niter)
        wd = cosine_scheduler(f(d, "cfg.weight_decay"), f(d, "cfg.weight_decay_end"), it, total)
        mom = cosine_scheduler(f(d, "cfg.momentum_teacher"), 1.0, it, total)
        temp = teacher_temperature(epoch, f(d, "cfg.warmup_teacher_temp"), f(d, "cfg.teacher_temp"),
                                   i(d, "cfg.warmup_teacher_temp_epochs"))
        for g_idx, group in enumerate(optimizer.param_groups):
            group["lr"] = lr
            if g_idx == 0:
                group["weight_decay"] = wd
        crops = [d["crop.%d.%d" % (it, c)] for c in range(ncrops)]
        teacher_output = teacher(crops[:2])
        student_output = student(crops)
        loss = dino_loss(student_output, teacher_output, center, ncrops, f(d, "cfg.student_temp"), temp)
        optimizer.zero_grad()
        loss.backward()
        clipped = clip_gradients(student, f(d, "cfg.clip_grad"))
        if epoch < i(d, "cfg.freeze_last_layer"):
            for n, p in student.named_parameters():
                if "last_layer" in n:
                    p.grad = None
        optimizer.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.data.mul_(mom).add_((1 - mom) * ps.detach().data)
        center = update_center(center, teacher_output.detach(), f(d, "cfg.center_momentum"))
        out["loss.%d" % it] = loss.detach().reshape(1)
        out["sched.%d" % it] = torch.tensor([lr, wd, mom, temp], dtype=torch.float64)
        out["clipped.%d" % it] = torch.tensor(clipped)
    out["center"] = center
    for k, v in student.state_dict().items():
        out["student." + k] = v
    for k, v in teacher.state_dict().items():
        out["teacher." + k] = v
    return out


def case_export(d):
    state = torch.load(bytes(d["path_bytes"].tolist()).decode())
    assert isinstance(state, dict) and all(torch.is_tensor(v) for v in state.values()), type(state)
    vit = VisionTransformer(i(d, "cfg.image_size"), i(d, "cfg.patch_size"), i(d, "cfg.in_channels"),
                            i(d, "cfg.dim"), i(d, "cfg.depth"), i(d, "cfg.heads"), f(d, "cfg.mlp_ratio"))
    vit.load_state_dict(state, strict=True)
    vit.eval()
    with torch.no_grad():
        return {"features": vit(d["in.images"]), "local_features": vit(d["in.local_images"])}


CASES = {"forward": case_forward, "loss": case_loss, "step": case_step, "export": case_export}


def main():
    out_dir = sys.argv[1]
    torch.set_num_threads(1)
    for path in sorted(glob.glob(os.path.join(out_dir, "*_in.pt"))):
        d = torch.load(path)
        kind = bytes(d["kind"].tolist()).decode()
        result = CASES[kind](d)
        torch.save(result, path[: -len("_in.pt")] + "_out.pt")
    print("reference_dino: ok")


if __name__ == "__main__":
    main()
