"""Which pairs a verification benchmark scores, and where its images are: LFW, CFP-FF/FP, a ``.bin``.

``open_benchmark(spec)`` turns ``lfw``, ``cfp-ff``, ``cfp-fp`` or ``bin:PATH`` into a ``Benchmark``:
its pairs (``VerificationPair``-like: ``path_a``, ``path_b``, ``same``, ``fold``), the folder their
image keys are relative to, and a ``dataset`` tag under which per-image embeddings are cached (CFP's
two protocols share their frontal photos, so they share the ``cfp`` cache). Every key's first path
component is its identity folder, so a key can go straight into an ImageFolder for the store path.

A ``.bin``'s crops are written once as ``<work>/bin-<name>-<digest>/bin/<index>.jpg`` (the bytes as
stored, never re-encoded): the harness then treats them like any other image folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from facerec.errors import ConfigError
from facerec.evaluation.cfp import cfp_images_dir, read_cfp_pairs
from facerec.evaluation.insightface_bin import read_bin
from facerec.evaluation.lfw import lfw_images_dir, read_pairs
from facerec.evaluation.pairs import VerificationPair

NAMES = ("lfw", "cfp-ff", "cfp-fp")
BIN_PREFIX = "bin:"
SPEC_HELP = "lfw | cfp-ff | cfp-fp | cfp (both CFP protocols) | bin:PATH (an insightface .bin)"


@dataclass(frozen=True)
class Benchmark:
    name: str                 # "lfw", "cfp-ff", "cfp-fp", "bin-<file stem>"
    dataset: str              # cache tag shared by benchmarks on the same images
    pairs: list
    images_dir: Path
    prealigned: bool = False  # the images are already aligned 112 px crops (a .bin)

    @property
    def keys(self) -> list[str]:
        return sorted({p.path_a for p in self.pairs} | {p.path_b for p in self.pairs})


def expand_specs(specs: list[str]) -> list[str]:
    """``cfp`` -> both CFP protocols; duplicates dropped, order kept; unknown names refused."""
    out: list[str] = []
    for spec in specs:
        for s in (["cfp-ff", "cfp-fp"] if spec == "cfp" else [spec]):
            if s not in NAMES and not s.startswith(BIN_PREFIX):
                raise ConfigError(f"unknown benchmark {s!r}; expected {SPEC_HELP}")
            if s not in out:
                out.append(s)
    return out


def open_benchmark(spec: str, *, lfw_dir: Path | None = None, cfp_dir: Path | None = None,
                   work: Path | None = None, pairs_file: Path | None = None) -> Benchmark:
    """The pairs and image folder of one benchmark (see the module docstring)."""
    if spec == "lfw":
        if lfw_dir is None:
            raise ConfigError("benchmark lfw needs --lfw-dir (the folder holding lfw-deepfunneled/ and pairs.txt)")
        return Benchmark("lfw", "lfw", read_pairs(pairs_file or Path(lfw_dir) / "pairs.txt"), lfw_images_dir(lfw_dir))
    if spec in ("cfp-ff", "cfp-fp"):
        if cfp_dir is None:
            raise ConfigError(f"benchmark {spec} needs --cfp-dir (the folder holding cfp-dataset/)")
        return Benchmark(spec, "cfp", read_cfp_pairs(cfp_dir, spec[-2:]), cfp_images_dir(cfp_dir))
    if spec.startswith(BIN_PREFIX):
        if work is None:
            raise ConfigError(f"benchmark {spec} needs a work folder to write its crops into")
        return _bin_benchmark(Path(spec[len(BIN_PREFIX):]), Path(work))
    raise ConfigError(f"unknown benchmark {spec!r}; expected {SPEC_HELP}")


def _bin_benchmark(path: Path, work: Path) -> Benchmark:
    data = read_bin(path)
    digest = hashlib.sha1(b"".join(hashlib.sha1(b).digest() for b in data.images)).hexdigest()[:10]
    name = f"bin-{path.stem}"
    root = work / f"{name}-{digest}"
    folder = root / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(data.images):
        file = folder / f"{i:06d}.jpg"
        if not file.exists():
            tmp = file.with_name(f".tmp-{file.name}")
            tmp.write_bytes(image)
            tmp.replace(file)
    pairs = [VerificationPair(f"bin/{p.path_a}.jpg", f"bin/{p.path_b}.jpg", p.same, p.fold) for p in data.pairs()]
    return Benchmark(name, f"{name}-{digest}", pairs, root, prealigned=True)
