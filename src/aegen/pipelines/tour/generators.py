"""Part II's types of image generators: the VAE, the VQ-VAE + prior, a GAN, a normalizing
flow and a diffusion model, trained for the same minutes each and scored by the same
feature network (:mod:`aegen.pipelines.generators`).

The VAE and the VQ-VAE + transformer prior that the tour's earlier parts trained are
reused rather than trained again (their own training time is reported, and the caption
says when it differs from the budget); the other families train here. While a family
is not installed (its model is not registered), the part shows a "not run" note
instead of failing the tour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...checkpoint import TRAIN_STATE, read_train_state
from ...errors import UserError
from .. import generators as gen
from .context import PartResult, Tour

KEY = "generators"
TITLE = "Part II · Types of image generators"
INTRO = (
    "The lecture's four kinds of generator — GAN, VAE, flow, diffusion — and the VQ-VAE with its "
    "prior, each trained for the same wall-clock minutes on the same images and scored by the same "
    "feature network: FID, KID, precision, recall, sharpness, class coverage, likelihood where the "
    "family has one, and what each costs."
)


@dataclass(frozen=True)
class GeneratorsBudget:
    minutes_each: float  # training minutes of each family that trains here
    minutes: float  # the part's planned time (training, scoring, sampling)


BUDGETS = {
    "tiny": GeneratorsBudget(minutes_each=0.01, minutes=0.3),
    "quick": GeneratorsBudget(minutes_each=0.6, minutes=3.0),
    "full": GeneratorsBudget(minutes_each=5.0, minutes=20.0),
}


def _finished(d: Path) -> bool:
    return (d / TRAIN_STATE).is_file() and bool(read_train_state(d).get("finished"))


def earlier_runs(out: Path) -> dict[str, dict[str, Path]]:
    """The tour's own VAE and VQ-VAE + prior, when their parts trained them to the end."""
    found: dict[str, dict[str, Path]] = {}
    vae = sorted(out.glob("*-vae/vae-mlp"))
    if vae and _finished(vae[0]):
        found["vae"] = {"run": vae[0]}
    vq = sorted(out.glob("*-vqvae"))
    if vq and _finished(vq[0] / "vqvae") and _finished(vq[0] / "prior"):
        found["vqvae"] = {"vqvae": vq[0] / "vqvae", "prior": vq[0] / "prior"}
    return found


def run(t: Tour, d: Path) -> PartResult:
    b, r = BUDGETS[t.budget.name], PartResult()
    try:
        families = gen.check_families(list(gen.FAMILIES))
    except UserError as e:
        r.numbers.append(("not run", f"{e}; run this part again once they are merged"))
        return r
    existing = earlier_runs(t.out)
    s = gen.compare_generators(
        d,
        b.minutes_each,
        families,
        data=t.data_name,
        data_dir=t.data_dir,
        limit=t.budget.limit,
        seed=t.seed,
        eval_n=t.budget.eval_n,
        existing=existing,
        features=t.features(),
        options=t.options(),
        progress=t.progress,
        log=t.log,
    )
    ref = s["reference"]
    r.numbers.append(
        ("the training images, scored like samples: FID / precision / recall / class entropy",
         f"{ref['fid']:.2f} / {ref['precision']:.3f} / {ref['recall']:.3f} / {ref['entropy_nats']:.2f} nats")
    )  # fmt: skip
    for fam, row in s["families"].items():
        like = (
            f"; {row['bits_per_dim']:.3f} bits/dim" if row.get("bits_per_dim") is not None
            else f"; {row['bits_per_code']:.3f} bits/code" if row.get("bits_per_code") is not None
            else ""
        )  # fmt: skip
        r.numbers.append((
            f"{fam} ({row['model']}): FID / precision / recall / sharpness / class entropy",
            f"{row['fid']:.2f} / {row['precision']:.3f} / {row['recall']:.3f} / "
            f"{row['sharpness']:.2f} / {row['entropy_nats']:.2f} nats{like}; trained "
            f"{row['train_seconds']:.0f} s; {row['sample_images_per_s']:.0f} images/s; "
            f"{row['parameters']:,} parameters",
        ))  # fmt: skip
        r.figures.append((t.rel(d / fam / "samples.png"), f"{fam}: {row['caption']}"))
        r.metrics[f"fid_{fam}"] = row["fid"]
        r.metrics[f"entropy_{fam}"] = row["entropy_nats"]
    r.metrics["fid_data"] = ref["fid"]
    return r
