"""Classification from AE and semi-supervised learning: Part I's conv AE, trained without
labels, as the encoder of classifiers that see only a few labels — against the same
network trained from scratch on those labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...classify import ClassifyConfig
from ..semisup import COLUMNS, markdown_table, run_semisup
from . import autoencoders
from .context import PartResult, Tour

KEY = "classification"
TITLE = "Classification from AE · Semi-supervised learning"
INTRO = (
    "Often, labeled data is only partially available: maybe 80 % of the training data is unlabeled "
    "and only 20 % is labeled. How do we make use of the unlabeled data? Part I's conv AE learned its "
    "encoder from every training image without labels; a classifier on that encoder (frozen, a linear "
    "probe; or fine-tuned) is compared with the same network trained from scratch on the labeled images. "
    "The full budget adds consistency training, which uses the unlabeled images a second time: the "
    "classifier's own confident predictions on weakly shifted unlabeled images become the targets "
    "for strongly augmented views of the same images (FixMatch-style)."
)
AE_BASED = ("probe", "finetune")


@dataclass(frozen=True)
class SemisupBudget:
    few: float  # the fraction of labels for "few labels"
    more: float  # … and for "a fifth of them"
    epochs: int  # classifier epochs over the labeled images
    min_steps: int  # at least this many optimizer steps, however few the labels
    minutes: float
    # semi-supervised modes beyond probe and finetune that this budget runs and may pick
    # as the best (on validation), each measured to pay at this budget (docs/tour.md)
    modes: tuple[str, ...] = ()
    # consistency: passes of unlabeled draws over the training images (its own budget)
    unlabeled_epochs: float = 0.0


BUDGETS = {
    "tiny": SemisupBudget(few=0.1, more=0.5, epochs=1, min_steps=20, minutes=0.3),
    "quick": SemisupBudget(few=0.01, more=0.2, epochs=2, min_steps=200, minutes=1.0),
    # consistency on the quick budget's 2-epoch AE: +0.3 points over fine-tuning at 1 % for
    # 7x its time, -2.4 at 20 % (docs/tour.md), so only the full budget runs it
    "full": SemisupBudget(
        few=0.01,
        more=0.2,
        epochs=8,
        min_steps=600,
        minutes=10.0,
        modes=("consistency",),
        unlabeled_epochs=10.0,
    ),
}


def _pick(rows: list[dict], fraction: float, modes: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """The semi-supervised row (AE-based or one of ``modes``) with the best *validation*
    accuracy at ``fraction``, and scratch's row."""
    at = [r for r in rows if abs(r["fraction"] - fraction) < 1e-12]
    ae = max((r for r in at if r["column"] in (*AE_BASED, *modes)), key=lambda r: r["val_acc"])
    scratch = next(r for r in at if r["column"] == "scratch")
    return ae, scratch


def run(t: Tour, d: Path) -> PartResult:
    b, r = BUDGETS[t.budget.name], PartResult()
    conv_dir, _ = autoencoders.train_conv(t)  # Part I's; trained there unless that part was skipped
    rows = run_semisup(
        d,
        t.data(),
        (b.few, b.more),
        1,
        models=("ae-conv",),
        base=ClassifyConfig(
            epochs=b.epochs,
            min_steps=b.min_steps,
            head_steps=b.min_steps // 2,
            unlabeled_epochs=b.unlabeled_epochs,
        ),
        columns=[c for c in COLUMNS if c.name in (*AE_BASED, "scratch", *b.modes)],
        progress=t.progress,
        log=t.log,
        pretrained={"ae-conv": conv_dir},
        first_seed=t.seed,
    )
    for row in sorted(rows, key=lambda r: (r["fraction"], r["column"])):
        r.numbers.append(
            (
                f"{row['fraction']:.0%} of the labels ({row['n_labeled']} images), {row['column']}",
                f"{row['test_acc']:.2%} (validation {row['val_acc']:.2%})",
            )
        )
    r.metrics["n_test"] = len(t.data().test)  # behind the standard error of a difference
    for name, fraction in (("few", b.few), ("more", b.more)):
        ae, scratch = _pick(rows, fraction, b.modes)
        r.metrics[f"{name}_fraction"] = fraction
        r.metrics[f"{name}_ae"] = ae["test_acc"]
        r.metrics[f"{name}_scratch"] = scratch["test_acc"]
        r.numbers.append(
            (
                f"{fraction:.0%} of the labels: AE-based (the {ae['column']} column, best on validation) "
                "− scratch",
                f"{100 * (ae['test_acc'] - scratch['test_acc']):+.2f} points",
            )
        )
    m = r.metrics
    figures = {
        "accuracy_vs_labels.png": "Test accuracy against the share of labelled images: classifiers "
        f"on the AE's encoder against the same network from scratch ({100 * m['few_ae']:.1f} vs "
        f"{100 * m['few_scratch']:.1f} % with {b.few:.0%} of the labels, {100 * m['more_ae']:.1f} vs "
        f"{100 * m['more_scratch']:.1f} % with {b.more:.0%}).",
        "confusion_best.png": "Confusion matrix of the best classifier: which classes it mixes up "
        "(on Fashion-MNIST: shirts, T-shirts, pullovers and coats).",
    }
    for name, caption in figures.items():
        if (d / name).is_file():
            r.figures.append((t.rel(d / name), caption))
    if rows:
        (d / "table.md").write_text(markdown_table(rows) + "\n")
    return r
