#!/usr/bin/python3
"""The multi-crop views of bench_augment done the reference way: torchvision + PIL, one image at a
time, exactly DINO's DataAugmentationDINO (main_dino.py) with its utils.GaussianBlur (PIL radius)
and utils.Solarization, for the C++/torchvision ratio of the augmentation benchmark.

Configurations (as bench_augment):
  fmnist:   28x28 grey images, 2x28 + 6x12 views, blur radius in [0.1, 2] (as
            AugmentOptions::ForResolution(28): the default σ range at every crop size);
  imagenet: 256x256 RGB images, 2x224 + 8x96 views, blur radius in [0.1, 2].
The images are decoded PIL images in memory (the C++ side also starts from decoded uint8 images).
Work is spread over --workers processes (default: all cores), like a DataLoader with that many
workers, so both sides use the same cores.

    /usr/bin/python3 bench/compare_torchvision_augment.py [--configs fmnist,imagenet]
                                                         [--seconds 5] [--workers N]

Prints one line per configuration: samples/s (one sample = all its views, normalised tensors).
"""
import argparse
import multiprocessing as mp
import os
import random
import time

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms


class GaussianBlur:
    def __init__(self, p, radius_min, radius_max):
        self.prob, self.radius_min, self.radius_max = p, radius_min, radius_max

    def __call__(self, img):
        if random.random() > self.prob:
            return img
        return img.filter(
            ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))


class Solarization:
    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


def make_transforms(global_size, local_size, n_local, blur_max, channels):
    flip_and_color_jitter = transforms.Compose([
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomApply(
            [transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)],
            p=0.8),
        transforms.RandomGrayscale(p=0.2),
    ])
    mean, std = (0.5,) * channels, (0.25,) * channels
    normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    bicubic = transforms.InterpolationMode.BICUBIC
    g1 = transforms.Compose([
        transforms.RandomResizedCrop(global_size, scale=(0.4, 1.0), interpolation=bicubic),
        flip_and_color_jitter, GaussianBlur(1.0, 0.1, blur_max), normalize])
    g2 = transforms.Compose([
        transforms.RandomResizedCrop(global_size, scale=(0.4, 1.0), interpolation=bicubic),
        flip_and_color_jitter, GaussianBlur(0.1, 0.1, blur_max), Solarization(0.2), normalize])
    loc = transforms.Compose([
        transforms.RandomResizedCrop(local_size, scale=(0.05, 0.4), interpolation=bicubic),
        flip_and_color_jitter, GaussianBlur(0.5, 0.1, blur_max), normalize])

    def views(img):
        return [g1(img), g2(img)] + [loc(img) for _ in range(n_local)]
    return views


CONFIGS = {
    # name: (resolution, channels, global, local, n_local, blur_max)
    "fmnist": (28, 1, 28, 12, 6, 2.0),
    "imagenet": (256, 3, 224, 96, 8, 2.0),
}


def make_images(resolution, channels, count, seed):
    rng = np.random.default_rng(seed)
    mode = "L" if channels == 1 else "RGB"
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, size=(8, 8, channels), dtype=np.uint8)
        img = Image.fromarray(small.squeeze(-1) if channels == 1 else small, mode)
        images.append(img.resize((resolution, resolution), Image.BILINEAR))
    return images


def worker(args):
    name, seconds, seed = args
    torch.set_num_threads(1)
    random.seed(seed)
    torch.manual_seed(seed)
    res, ch, g, l, n, blur = CONFIGS[name]
    views = make_transforms(g, l, n, blur, ch)
    images = make_images(res, ch, 64, seed)
    for img in images[:4]:  # warm-up
        views(img)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for img in images:
            views(img)
            done += 1
    return done, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default="fmnist,imagenet")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    a = p.parse_args()
    for name in a.configs.split(","):
        with mp.get_context("fork").Pool(a.workers) as pool:
            results = pool.map(worker, [(name, a.seconds, s) for s in range(a.workers)])
        rate = sum(d / t for d, t in results)
        print(f"torchvision+PIL {name}: {rate:.1f} samples/s "
              f"({a.workers} worker processes, one image at a time)", flush=True)


if __name__ == "__main__":
    main()
