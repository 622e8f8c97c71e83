"""The revision (commit) of a Hugging Face hub dataset, for the ingest manifest's provenance.

A hub dataset changes under the same name; the commit it was read at is what makes a store
reproducible. ``datasets`` resolves the commit when it loads and leaves it in the paths it uses
(``hf://datasets/owner/name@<sha>/...`` data files, or ``.../<sha>/`` in its cache folders); where it
does not, the local hub cache's ``refs/<branch>`` names the commit last downloaded. None when neither
tells: the manifest then says the revision is unknown rather than guessing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_SHA = re.compile(r"(?:@|/)([0-9a-f]{40})(?:/|$)")


def revision_in(texts: list[str]) -> str | None:
    """The first 40-hex commit found after an ``@`` or between slashes in ``texts``."""
    for text in texts:
        found = _SHA.search(text)
        if found:
            return found.group(1)
    return None


def _paths_of(ds: Any) -> list[str]:
    texts = [str(f.get("filename", "")) for f in getattr(ds, "cache_files", None) or []]
    info = getattr(ds, "info", None)
    texts += [str(k) for k in (getattr(info, "download_checksums", None) or {})]
    ex = getattr(ds, "_ex_iterable", None)
    texts += [repr(getattr(ex, "kwargs", ""))[:20000]] if ex is not None else []
    return texts


def cached_revision(hub_id: str, branch: str = "main", cache: str | None = None) -> str | None:
    """The commit of ``hub_id`` last downloaded into the hub cache (``refs/<branch>``), if any."""
    root = Path(cache or os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    ref = root.expanduser() / f"datasets--{hub_id.replace('/', '--')}" / "refs" / branch
    try:
        sha = ref.read_text().strip()
    except OSError:
        return None
    return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None


def hub_revision(hub_id: str, ds: Any) -> str | None:
    """The commit ``ds`` (loaded from ``hub_id``) was read at, or None when it cannot be told."""
    return revision_in(_paths_of(ds)) or cached_revision(hub_id)
