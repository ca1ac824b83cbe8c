"""The tour's page: the claims table, then a section per lecture part, in the lecture's order."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ...checkpoint import CONFIG
from ...eval.report import collect_run, data_uri, page_head, scores_html
from ...version import __version__
from .claims import Claim
from .context import PartResult

__all__ = ["clock", "render_tour"]

MARK = {True: ("✓", "holds"), False: ("✗", "fails"), None: ("–", "unmeasured")}
_CSS = (
    "<style>table.claims td, table.claims th { text-align: left; vertical-align: top; }"
    " td.holds { color: #1a7f1a; font-weight: 700; } td.fails { color: #b00020; font-weight: 700; }"
    " td.unmeasured { color: #888; } table.claims td.mark { text-align: center; font-size: 120%; }"
    " .slide { color: #666; font-size: 88%; }</style>"
)


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def claims_html(claims: list[Claim], titles: dict[str, str]) -> list[str]:
    e = html.escape
    held = sum(c.holds is True for c in claims)
    failed = sum(c.holds is False for c in claims)
    out = [
        '<section id="claims"><h2>What the lecture claims, and what this run measured</h2>',
        f"<p>{held} of {len(claims)} claims hold, {failed} fail"
        + (
            f", {len(claims) - held - failed} were not measured"
            if held + failed < len(claims)
            else ""
        )
        + ". Every mark is computed from the numbers beside it.</p>",
        '<table class="claims"><thead><tr><th></th><th>the lecture says</th>'
        "<th>measured</th><th>section</th></tr></thead><tbody>",
    ]
    for c in claims:
        sign, cls = MARK[c.holds]
        out.append(
            f'<tr id="claim-{e(c.key)}"><td class="mark {cls}" title="{cls}">{sign}</td>'
            f'<td>{e(c.text)}<div class="slide">slide: “{e(c.slide)}”</div></td>'
            f"<td>{e(c.evidence)}</td>"
            f'<td><a href="#part-{e(c.part)}">{e(titles.get(c.part, c.part))}</a></td></tr>'
        )
    out.append("</tbody></table></section>")
    return out


def render_tour(
    out: Path, state: dict[str, Any], parts: dict[str, tuple], claims: list[Claim]
) -> str:
    """The whole page; ``parts`` is key → (title, intro, …) in the lecture's order."""
    e = html.escape
    total = sum(p.get("seconds", 0) for p in state["parts"].values())
    meta = (
        f"budget {e(state['budget'])} · data {e(state['data'])} · seed {state['seed']} · "
        f"{clock(total)} of computing · aegen {e(__version__)}"
    )
    body = page_head("aegen tour: autoencoders and image generation", meta)
    body.append(_CSS)
    titles = {k: v[0] for k, v in parts.items()}
    body += claims_html(claims, titles)
    body.append(
        "<nav><ol>"
        + "".join(f'<li><a href="#part-{k}">{e(t)}</a></li>' for k, t in titles.items())
        + "</ol></nav>"
    )
    for i, (key, (title, intro, *_)) in enumerate(parts.items(), 1):
        body.append(f'<section class="part" id="part-{key}"><h2>{e(title)}</h2><p>{e(intro)}</p>')
        part = state["parts"].get(key)
        if part is None:
            body.append(
                '<p class="warnings">not run yet: run the tour again to add this part</p></section>'
            )
            continue
        res = PartResult.from_json(part)
        body.append(
            f'<p class="meta">{clock(part.get("seconds", 0))} · files in {e(str(out / f"{i}-{key}"))}</p>'
        )
        mine = [c for c in claims if c.part == key]
        if mine:
            body.append('<ul class="part-claims">')
            body += [
                f'<li><a href="#claim-{e(c.key)}">{MARK[c.holds][0]}</a> {e(c.text)}</li>'
                for c in mine
            ]
            body.append("</ul>")
        if res.numbers:
            body.append('<table class="numbers"><tbody>')
            body += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in res.numbers]
            body.append("</tbody></table>")
        body.append('<div class="figures">')
        for rel, caption in res.figures:
            p = out / rel
            if p.is_file():
                body.append(
                    f'<figure><img src="{data_uri(p.read_bytes())}" alt="{e(caption)}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
        body.append("</div>")
        runs = [out / rd for rd in res.runs if (out / rd / CONFIG).is_file()]
        if runs:
            body.append("<h3>Scores of this part's runs</h3>")
            body += scores_html([collect_run(rd, rd.name) for rd in runs], table_id=f"scores-{key}")
        body.append("</section>")
    body.append("</body></html>")
    return "\n".join(body) + "\n"
