"""report.html from report.md: one self-contained file, images embedded."""

from __future__ import annotations

from pathlib import Path

HTML_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;
padding:0 16px;color:#212121;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #e0e0e0;padding-bottom:6px}
h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:8px 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
tr:nth-child(even) td{background:#fafafa}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:12px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
.headline{font-size:1.15em;padding:12px 16px;border-left:6px solid VAR;background:#fafafa}
"""


def render_html(md_text: str, base_dir: Path, *, promoted: bool | None = None) -> str:
    """report.html from report.md: one file, images embedded as data URIs, no external resources."""
    import base64
    import html as _html
    import re

    import markdown

    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])

    def embed(m: re.Match) -> str:
        src = m.group(2)
        f = base_dir / src
        if src.startswith("data:") or not f.is_file():
            return m.group(0) if src.startswith("data:") else f"<em>[missing image {_html.escape(src)}]</em>"
        data = base64.b64encode(f.read_bytes()).decode()
        return f"{m.group(1)}data:image/png;base64,{data}{m.group(3)}"

    body = re.sub(r'(<img [^>]*src=")([^"]+)(")', embed, body)
    body = body.replace("<p><strong>", '<p class="headline"><strong>', 1)
    title = md_text.splitlines()[0].lstrip("# ").strip() if md_text else "tunegate report"
    style = HTML_STYLE.replace("VAR", {True: "#2e7d32", False: "#c62828", None: "#1565c0"}[promoted])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )
