"""`simulate-mixture`: cfDNA-like samples of known tissue proportions, drawn from the pure
tissue profiles of a simulated cohort (no sample-level variation, so the oracle is exact), with
the cohort's latent subtype/allele structure when it has one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_write_text, check_output
from tissuebert.errors import ConfigError
from tissuebert.simulate.formats import PatWriter
from tissuebert.simulate.reads import ReadSimulator
from tissuebert.simulate.truth import Truth, load_truth

MIX_TRUTH = "truth.tsv"


def parse_proportions(text: str) -> dict[str, float]:
    """'Liver-Hep=0.1,Blood-T=0.9' -> {'Liver-Hep': 0.1, 'Blood-T': 0.9}."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"bad proportion {item!r}", hint="write TISSUE=FRACTION pairs separated by commas") from None
    return out


def _check_proportions(truth: Truth, proportions: dict[str, float]) -> np.ndarray:
    props = np.zeros(len(truth.tissues))
    for name, value in proportions.items():
        if name not in truth.tissues:
            raise ConfigError(f"unknown tissue {name!r} in --proportions", hint=f"known tissues: {', '.join(truth.tissues)}")
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"proportion of {name} must be >= 0, got {value}")
        props[truth.tissues.index(name)] = value
    if props.sum() <= 0:
        raise ConfigError("proportions sum to 0", hint="give at least one positive proportion")
    if abs(props.sum() - 1.0) > 1e-3:
        raise ConfigError(f"proportions sum to {props.sum():.4f}, not 1", hint="make them add up to 1")
    return props / props.sum()


def _frag_params(cohort_dir: Path) -> tuple[int, int]:
    meta = json.loads((cohort_dir / "simulate.json").read_text())
    return int(meta["config"]["frag_mode"]), int(meta["config"]["frag_max"])


def simulate_mixture(cohort_dir: str | Path, proportions: dict[str, float], *, depth: float, seed: int,
                     out_path: str | Path, force: bool = False, truth: Truth | None = None) -> Path:
    """Write one .pat.gz (+.csi) whose fragments come from each tissue with the given proportion;
    returns its path."""
    cohort_dir, out_path = Path(cohort_dir), Path(out_path)
    truth = truth if truth is not None else load_truth(cohort_dir)
    props = _check_proportions(truth, proportions)
    if not depth > 0:
        raise ConfigError(f"--depth must be > 0, got {depth}")
    check_output(out_path, force=force)
    frag_mode, frag_max = _frag_params(cohort_dir)
    used = np.flatnonzero(props > 0)
    if truth.has_latent:  # each fragment also draws its cell subtype and allele, as in the cohort
        class_w, class_pi = truth.latent()
        sources, latent_weights = class_pi[:, used].transpose(1, 0, 2, 3), class_w[used]
    else:
        sources, latent_weights = truth.pi[:, used, :].transpose(1, 0, 2), None
    sim = ReadSimulator(truth, sources=sources, weights=props[used], latent_weights=latent_weights, depth=depth,
                        frag_mode=frag_mode, frag_max=frag_max, rng=np.random.default_rng(seed))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = PatWriter(out_path, truth.chroms)
    try:
        for chunk in sim.chunks():
            writer.write(chunk)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return out_path


def random_proportions(truth: Truth, rng: np.random.Generator, max_components: int = 5) -> dict[str, float]:
    """A sparse Dirichlet mixture: 2..max_components tissues with Dirichlet(1) weights."""
    n_comp = int(rng.integers(2, min(max_components, len(truth.tissues)) + 1))
    chosen = rng.choice(len(truth.tissues), size=n_comp, replace=False)
    weights = rng.dirichlet(np.ones(n_comp))
    return {truth.tissues[t]: float(w) for t, w in zip(chosen, weights)}


def simulate_mixtures(cohort_dir: str | Path, mixtures: dict[str, dict[str, float]], *, depth: float, seed: int,
                      out_dir: str | Path, force: bool = False) -> Path:
    """Write ``out_dir/<name>.pat.gz`` for each mixture and ``out_dir/truth.tsv`` (mixture, tissue, proportion)."""
    out_dir = Path(out_dir)
    check_output(out_dir, force=force)
    truth = load_truth(cohort_dir)
    lines = ["mixture\ttissue\tproportion"]
    seeds = np.random.SeedSequence(seed).spawn(len(mixtures))
    for (name, props), sub_seed in zip(mixtures.items(), seeds):
        norm = _check_proportions(truth, props)
        simulate_mixture(cohort_dir, props, depth=depth, seed=int(sub_seed.generate_state(1)[0]),
                         out_path=out_dir / f"{name}.pat.gz", force=True, truth=truth)
        lines += [f"{name}\t{t}\t{p:.6f}" for t, p in zip(truth.tissues, norm)]
    atomic_write_text(out_dir / MIX_TRUTH, "\n".join(lines) + "\n")
    return out_dir
