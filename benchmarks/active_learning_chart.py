"""The active-learning simulation's curves as an SVG chart and a Markdown table (BENCHMARKS.md).

Run: ``python -m benchmarks.active_learning_chart [--json benchmarks/active_learning_wm811k.json]
[--svg benchmarks/active_learning_wm811k.svg]``. Reads the document ``python -m
pipelines.active_learning simulate`` printed, writes the chart (val macro-F1 against labels, log
scale, one line per strategy, the 95% target dashed; plain SVG, no plotting library) and prints
the table of every round on stdout.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
COLOURS = {"random": "#7f7f7f", "margin_diverse": "#0072b2"}  # grey, blue (colour-blind safe)
NAMES = {"random": "random sampling", "margin_diverse": "margin + diversity (the queue's order)"}
WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 24, 64


def svg(doc: dict) -> str:
    """The chart of ``doc``'s strategies (see the module doc)."""
    labels = [n for s in doc["strategies"].values() for n in s["labels"]]
    scores = [f for s in doc["strategies"].values() for f in s["macro_f1"]]
    x_low, x_high = math.log10(min(labels)), math.log10(max(doc["pool"], max(labels)))
    y_low = math.floor(min(scores) * 10) / 10
    y_high = 1.0

    def x(n: float) -> float:
        return LEFT + (math.log10(n) - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)

    def y(f: float) -> float:
        return TOP + (y_high - f) / (y_high - y_low) * (HEIGHT - TOP - BOTTOM)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           "<title>Val macro-F1 against labels: random sampling and the review queue's order "
           "(WM-811K)</title>",
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>']
    for k in range(int(y_low * 10), 11):  # horizontal grid every 0.1
        f = k / 10
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(f):.1f}" y2="{y(f):.1f}" '
                   f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y(f) + 4:.1f}" '
                   f'text-anchor="end">{f:.1f}</text>')
    for n in (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if 10 ** x_low <= n <= 10 ** x_high:
            out.append(f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{TOP}" '
                       f'y2="{HEIGHT - BOTTOM}" stroke="#eee"/><text x="{x(n):.1f}" '
                       f'y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{n:,}</text>')
    target = doc["target_macro_f1"]
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(target):.1f}" '
               f'y2="{y(target):.1f}" stroke="#d55e00" stroke-dasharray="6 4"/>'
               f'<text x="{WIDTH - RIGHT - 4}" y="{y(target) - 6:.1f}" text-anchor="end" '
               f'fill="#a04000">95% of full-data macro-F1 ({target:.3f})</text>')
    for k, (name, strategy) in enumerate(doc["strategies"].items()):
        colour = COLOURS.get(name, "#009e73")
        points = " ".join(f"{x(n):.1f},{y(f):.1f}"
                          for n, f in zip(strategy["labels"], strategy["macro_f1"]))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                   f'stroke-width="2.5"/>')
        out += [f'<circle cx="{x(n):.1f}" cy="{y(f):.1f}" r="3" fill="{colour}"/>'
                for n, f in zip(strategy["labels"], strategy["macro_f1"])]
        reached = strategy["labels_to_95"]
        legend = NAMES.get(name, name) + (f": 95% at {reached:,} labels" if reached
                                          else ": never reaches 95%")
        ly = HEIGHT - BOTTOM + 36 + k * 16
        out.append(f'<line x1="{LEFT}" x2="{LEFT + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2.5"/><text x="{LEFT + 30}" '
                   f'y="{ly}">{escape(legend)}</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - BOTTOM + 36}" text-anchor="end">'
               f'labels (log scale)</text>')
    out.append(f'<text transform="translate(16 {TOP + (HEIGHT - TOP - BOTTOM) / 2}) '
               f'rotate(-90)" text-anchor="middle">val macro-F1</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(doc: dict) -> str:
    """Every round: labels and each strategy's val macro-F1 (blank after it stopped)."""
    names = list(doc["strategies"])
    by = {name: dict(zip(s["labels"], s["macro_f1"])) for name, s in doc["strategies"].items()}
    rows = sorted({n for s in doc["strategies"].values() for n in s["labels"]})
    lines = ["| labels | " + " | ".join(NAMES.get(n, n) for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for n in rows:
        lines.append(f"| {n:,} | " + " | ".join(
            f"{by[name][n]:.4f}" if n in by[name] else "" for name in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=HERE / "active_learning_wm811k.json")
    parser.add_argument("--svg", type=Path, default=HERE / "active_learning_wm811k.svg")
    args = parser.parse_args(argv)
    doc = json.loads(args.json.read_text())
    args.svg.write_text(svg(doc))
    print(table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
