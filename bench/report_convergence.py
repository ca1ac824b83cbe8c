"""Where the IWAE test NLL of a trained VAE stops moving: in the draws k and the images n.

    python bench/report_convergence.py RUN_DIR [--data fashion-mnist] [--json out.json]

For each k it estimates log p(x) of the first ``--images`` test images (one seed),
then reports the mean NLL in nats, its standard error over images, and its change
from the previous k; for the images it reports, at the chosen k, the mean over the
first n against the mean over all of them. ``aegen train --report fast`` takes the
smallest k and n where the change is below the standard error (docs/performance.md).
Timings are wall seconds of this process (meaningless on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from aegen.checkpoint import load
from aegen.data import load_data
from aegen.data.loader import to_float


def log_likelihoods(model, x_u8: torch.Tensor, k: int, seed: int, batch: int = 500):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat(
            [
                model.log_likelihood(to_float(x_u8[s : s + batch]), k=k, generator=g)
                for s in range(0, len(x_u8), batch)
            ]
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--ks", default="1,5,10,20,50,100")
    ap.add_argument("--ns", default="500,1000,2000,5000,10000")
    ap.add_argument("--json")
    args = ap.parse_args()
    model = load(args.run_dir).eval()
    x = load_data(args.data).test.x[: args.images]
    rows, prev, per_image = [], None, {}
    for k in (int(v) for v in args.ks.split(",")):
        t = time.perf_counter()
        ll = log_likelihoods(model, x, k, seed=0)
        sec = time.perf_counter() - t
        nll, se = -ll.mean().item(), ll.std().item() / math.sqrt(len(ll))
        per_image[k] = ll
        rows.append(
            {
                "k": k,
                "nll": nll,
                "se": se,
                "change_from_previous_k": None if prev is None else nll - prev,
                "seconds": sec,
            }
        )
        prev = nll
    stable_k = next(
        (
            r["k"]
            for r in rows[1:]
            if r["change_from_previous_k"] is not None
            and abs(r["change_from_previous_k"]) < r["se"]
        ),
        rows[-1]["k"],
    )
    ll = per_image[stable_k]
    all_mean = -ll.mean().item()
    images = []
    for n in (int(v) for v in args.ns.split(",")):
        if n > len(ll):
            continue
        sub = ll[:n]
        se = sub.std().item() / math.sqrt(n)
        images.append(
            {
                "n": n,
                "nll": -sub.mean().item(),
                "se": se,
                "change_from_all": -sub.mean().item() - all_mean,
            }
        )
    stable_n = next((r["n"] for r in images if abs(r["change_from_all"]) < r["se"]), len(ll))
    out = {
        "run_dir": args.run_dir,
        "images": len(ll),
        "by_k": rows,
        "stable_k": stable_k,
        "by_images_at_stable_k": images,
        "stable_n": stable_n,
        "torch_threads": torch.get_num_threads(),
    }
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
