"""A dependency-free SVG of a `softfold bench` report: first-token time and decode speed per variant."""
from xml.sax.saxutils import escape

PANELS = (("ttft_ms", "time to first token, ms (shorter is better)"),
          ("decode_tok_s", "decode, tokens/s (longer is better)"))
LABEL_W, BAR_W, ROW_H, TOP = 300, 360, 18, 40
# the guard runs a 1B model per request: its bars would squash the others, so they are clipped (value shown)
CLIPPED = ("guard-", "dual-system")


def _color(name: str) -> str:
    return "#2b6cb0" if name.startswith("softfold") else "#a0aec0"


def svg(report: dict) -> str:
    """Horizontal bars, one panel per metric; softfold's own bundles in blue, the alternatives in grey."""
    timed = [r for r in report["results"] if r.get("run") and not r.get("skipped")]
    height = TOP + len(timed) * ROW_H + 30
    parts = []
    for i, (metric, title) in enumerate(PANELS):
        x0 = i * (LABEL_W + BAR_W + 60)
        rows = [(r["name"], r["run"].get(metric)) for r in timed]
        scale = [v for name, v in rows if v and not name.startswith(CLIPPED)] or [v for _, v in rows if v] or [1]
        top = max(scale)
        parts.append(f'<text x="{x0}" y="20" font-weight="bold">{escape(title)}</text>')
        for j, (name, value) in enumerate(rows):
            y = TOP + j * ROW_H
            parts.append(f'<text x="{x0 + LABEL_W - 6}" y="{y + 12}" text-anchor="end">{escape(name)}</text>')
            if value is None:
                parts.append(f'<text x="{x0 + LABEL_W + 4}" y="{y + 12}">-</text>')
                continue
            width = round(min(BAR_W * value / top, BAR_W + 24), 1)
            parts.append(f'<rect x="{x0 + LABEL_W}" y="{y + 2}" width="{width}" height="{ROW_H - 5}" '
                         f'fill="{_color(name)}" data-variant="{escape(name)}" data-{metric.replace("_", "-")}="{value}"/>')
            parts.append(f'<text x="{x0 + LABEL_W + width + 4}" y="{y + 12}">{value}</text>')
    width = 2 * (LABEL_W + BAR_W + 60)
    m = report["machine"]
    caption = (f"{m['cpu']}, {m['cores']} cores, OMP_NUM_THREADS=1; {report['new_tokens']} greedy new tokens; "
               f"medians over {report.get('rounds', 1)} rounds; guard and dual-system bars clipped")
    parts.append(f'<text x="0" y="{height - 8}" font-size="11">{escape(caption)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12">\n' + "\n".join(parts) + "\n</svg>\n")
