"""``aegen reconstruct RUN_DIR --n N --out FILE.png``: test images beside their reconstructions."""

from __future__ import annotations

import argparse

from ..data.loader import to_float
from ..errors import UserError
from ..eval.metrics import psnr
from ..models.abilities import Reconstructs
from ..models.ae import corrupt
from ..viz import save_recon_grid
from ._common import add_data_args, data_for_run, load_model, output_file
from .argtypes import positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("reconstruct", help="save originals and reconstructions as a PNG grid")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=positive_int, default=20, help="number of test images (default 20)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument(
        "--noise",
        choices=["none", "gaussian", "dropout"],
        default="none",
        help="corrupt the inputs first (to see a denoising AE at work)",
    )
    p.add_argument("--noise-level", type=positive_float, default=0.3)
    add_data_args(p, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    if args.noise == "dropout" and args.noise_level >= 1:
        level = args.noise_level
        raise UserError(f"--noise-level is the share of pixels dropped: below 1, got {level}")
    model = load_model(args.run_dir)
    if not isinstance(model, Reconstructs):
        kind = type(model).__name__
        raise UserError(f"{args.run_dir}: a {kind} does not reconstruct images; give an AE's run")
    data = data_for_run(args.run_dir, args)
    x = to_float(data.test.x[: args.n])
    inp = corrupt(x, args.noise, args.noise_level) if args.noise != "none" else x
    r = model.reconstruct(inp)
    save_recon_grid(out, inp, r, nrow=10)
    print(f"wrote {out} ({x.shape[0]} images, mean PSNR {psnr(r, x).mean():.2f} dB)")
    return 0
