"""`focus-data download --list`: what each dataset needs, its size, licence and how it is obtained."""
from __future__ import annotations

from focusclip.pipeline.download.catalog import CATALOG
from focusclip.pipeline.download.spec import Dataset

ACCESS = {"public": "public, no account", "form": "request form", "account": "Kaggle account"}


def format_list(catalog: dict[str, Dataset] = CATALOG) -> str:
    """An aligned table (name, access, tasks, size, licence), then one paragraph per dataset."""
    rows = [("name", "access", "focus-eval tasks", "size", "licence")]
    rows += [(d.name, ACCESS.get(d.access, d.access), ", ".join(d.tasks) or "(training data, MPII)", d.size,
              d.licence) for d in catalog.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    for d in catalog.values():
        lines += ["", f"{d.name}: {d.title} — {d.page}"]
        for p in d.parts:
            how = "listed in " + p.url if p.url_list else (p.url or "dropped in with --from (" + d.request + ")")
            lines.append(f"  {p.name}{' (' + p.size + ')' if p.size else ''}: {how}")
        lines.append(f"  lands in: {d.finds}")
        if d.needs:
            lines.append(f"  needs: {', '.join(d.needs)}")
    return "\n".join(lines)
