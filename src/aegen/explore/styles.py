"""The M2 page: "same style, every class" — one style z drawn in every class y, live.

Kingma et al.'s M2 (:mod:`aegen.models.m2`) splits the latent into a class y and a
style z. The page shows a grid whose rows are styles and whose columns are the
classes: a row keeps what z holds (stroke width, size, slant, brightness) while
the columns change what the image is. The first row is the user's: sliders over
every dimension of z (the prior is N(0, I), so ±3 covers it), or the style of a
test image — the mean of q(z|x, ŷ) at the class ŷ its classifier q(y|x) finds
most likely — drawn in every class. The other rows are styles drawn from the prior
with a seed.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.loader import to_float
from ..errors import UserError
from ..models.m2 import every_class
from .pages import ModelPage, field_float_list, field_int, field_list, pixels

__all__ = ["StylePage"]

MAX_ROWS = 8  # styles in one request
RANDOM_ROWS = 5  # the prior's styles the page shows under the user's row
SLIDER_RANGE = 3.0  # the sliders span ±3 prior standard deviations
STATIC_IMAGES = 16  # test images (with their style rows) in the exported page


class StylePage(ModelPage):
    """An ``m2`` run: ``images`` (N, 28, 28) uint8 test images, ``labels`` (N,)."""

    kind = "styles"

    def prepare(self) -> None:
        model, images = self.model, self.images
        self.dim = int(model.config.latent_dim)
        self.num_classes = int(model.config.num_classes)
        if self.num_classes != len(self.classes):
            raise UserError(
                f"{self.title}: the model has {self.num_classes} classes, the data "
                f"{len(self.classes)}; say which data with --data"
            )
        with torch.no_grad():
            code = torch.cat([model.encode(to_float(part)) for part in images.split(500)])
        self.styles = code[:, : self.dim]  # (N, D): μ of q(z|x, ŷ)
        self.probs = code[:, self.dim :]  # (N, K): q(y|x)
        self.accuracy = float((self.probs.argmax(1) == self.labels).float().mean())

    # ------------------------------------------------------------------ the model

    def rows(self, styles: torch.Tensor) -> torch.Tensor:
        """Styles (S, D) → images (S, K, 1, 28, 28) in [0, 1]: each style in every class."""
        images = every_class(self.model, styles).float()
        return images.view(styles.shape[0], self.num_classes, *images.shape[1:])

    def prior_styles(self, seed: int, n: int) -> torch.Tensor:
        """``n`` styles (n, D) from the prior N(0, I), fixed by ``seed``."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn((n, self.dim), generator=g)

    def _rows_json(self, styles: torch.Tensor) -> list[list[str]]:
        return [[pixels(im) for im in row] for row in self.rows(styles)]

    # ------------------------------------------------------------------ actions

    def info(self) -> dict[str, Any]:
        return {
            **self.images_info(),
            "dim": self.dim,
            "accuracy": round(self.accuracy, 4),
            "slider_range": SLIDER_RANGE,
            "random_rows": RANDOM_ROWS,
            "max_rows": MAX_ROWS,
        }

    def act_rows(self, body: dict[str, Any]) -> dict[str, Any]:
        """``styles``: a list of 1 … MAX_ROWS styles (D numbers each) → their rows of images."""
        given = field_list(body, "styles", (1, MAX_ROWS))
        styles = [
            field_float_list({f"styles[{i}]": s}, f"styles[{i}]", self.dim)
            for i, s in enumerate(given)
        ]
        return {"rows": self._rows_json(torch.stack(styles))}  # from (S, D)

    def act_random(self, body: dict[str, Any]) -> dict[str, Any]:
        """``seed`` (and ``n``, default RANDOM_ROWS): styles from the prior and their rows."""
        seed = field_int(body, "seed", 0, 2**31 - 1)
        n = field_int(body, "n", 1, MAX_ROWS, default=RANDOM_ROWS)
        styles = self.prior_styles(seed, n)
        return {"seed": seed, "styles": styles.tolist(), "rows": self._rows_json(styles)}

    def _image(self, i: int) -> dict[str, Any]:
        return {
            "index": i,
            "label": int(self.labels[i]),
            "image": pixels(self.images[i]),
            "probs": [round(p, 4) for p in self.probs[i].tolist()],
            "style": self.styles[i].tolist(),
            "row": self._rows_json(self.styles[i][None])[0],
        }

    def act_image(self, body: dict[str, Any]) -> dict[str, Any]:
        """A test image, q(y|x), its style and that style drawn in every class."""
        return self._image(self.field_index(body))

    # ------------------------------------------------------------------ export

    def static(self) -> dict[str, Any]:
        n = min(STATIC_IMAGES, len(self.labels))
        return {
            **self.info(),
            "random": self.act_random({"seed": 0}),
            "images": [self._image(i) for i in range(n)],
        }
