"""Region-level count tables (CelFiE's layout) on the real CelFiE reference: the reader against a
plain csv parse, EM against a generic optimiser of the same likelihood, NNLS against scipy's
bounded least squares, recovery of a mixture drawn from the real reference, and bad tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import lsq_linear, minimize

from tissuebert.deconvolve.region_table import BETA_FLOOR, deconvolve_table, join_tables, read_region_counts
from tissuebert.errors import InputFormatError, TissueBertError

TIM = "celfie/tim_matrix.txt"
TRUTH = {"neutrophil": 0.6, "hepatocyte": 0.25, "brain": 0.1, "lung": 0.05}


def test_reader_matches_a_plain_parse_of_the_real_crlf_table(shared_data: Path) -> None:
    path = shared_data / TIM
    assert b"\r\n" in path.read_bytes()[:2000]  # the real file is CRLF, with fractional counts
    table = read_region_counts(path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    header, body = rows[0], rows[1:]
    assert table.names == [h[: -len("_meth")] for h in header[3::2]]
    assert len(table.names) == 19 and len(table.keys) == len(body) == 1581
    for k in (0, 1, 700, 1580):
        cols = body[k]
        assert table.keys[k] == (cols[0], int(cols[1]), int(cols[2]))
        meth = np.array([float(v) for v in cols[3::2]])
        depth = np.array([float(v) for v in cols[4::2]])
        np.testing.assert_array_equal(table.depth[k], depth)
        np.testing.assert_array_equal(table.meth[k][depth > 0], meth[depth > 0])


def _mixture_table(reference, path: Path, depth: float = 30.0, seed: int = 0) -> Path:
    """A sample drawn from the real reference's levels: Poisson depth, binomial methylated calls."""
    rng = np.random.default_rng(seed)
    with np.errstate(invalid="ignore"):
        beta = np.nan_to_num(reference.meth / reference.depth)
    pi = np.array([TRUTH.get(n, 0.0) for n in reference.names])
    total = rng.poisson(depth, len(beta))
    meth = rng.binomial(total, np.clip(beta @ pi, 0, 1))
    lines = ["chrom\tstart\tend\tmix_meth\tmix_depth"]
    lines += [f"{c}\t{s}\t{e}\t{m}\t{d}" for (c, s, e), m, d in zip(reference.keys, meth, total)]
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def test_mixture_from_the_real_reference_is_recovered(shared_data: Path, tmp_path: Path) -> None:
    reference = read_region_counts(shared_data / TIM)
    joined = join_tables(read_region_counts(_mixture_table(reference, tmp_path / "mix.tsv")), reference)
    assert joined.beta.shape == (1289, 19)  # regions with every reference tissue covered
    results = {r.method: r for r in deconvolve_table(joined, ["em", "nnls"], n_boot=40)["mix"]}
    for res in results.values():
        est = dict(zip(res.tissues, res.proportions))
        assert abs(sum(est.values()) - 1) < 1e-9
        for tissue, share in TRUTH.items():  # ~39k calls over 1,289 regions: a few points at most
            assert abs(est[tissue] - share) < 0.03, (res.method, tissue, est[tissue])
        assert sum(v for t, v in est.items() if t not in TRUTH) < 0.06
        assert np.all(res.ci_low <= res.proportions) and np.all(res.proportions <= res.ci_high)
        k = res.tissues.index("neutrophil")
        assert 0.01 < res.ci_high[k] - res.ci_low[k] < 0.15  # a real spread, not a point


def test_em_is_the_maximum_likelihood_of_celfies_model(shared_data: Path, tmp_path: Path) -> None:
    reference = read_region_counts(shared_data / TIM)
    joined = join_tables(read_region_counts(_mixture_table(reference, tmp_path / "mix.tsv", seed=3)), reference)
    em = deconvolve_table(joined, ["em"], n_boot=0)["mix"][0].proportions
    beta = np.clip(joined.beta, BETA_FLOOR, 1 - BETA_FLOOR)
    meth, depth = joined.meth[:, 0], joined.depth[:, 0]

    def nll(z: np.ndarray) -> float:  # softmax parametrisation: any z is a valid mixture
        pi = np.exp(z - z.max())
        p = beta @ (pi / pi.sum())
        return -float(np.sum(meth * np.log(p) + (depth - meth) * np.log1p(-p)))

    best = minimize(nll, np.log(np.maximum(em, 1e-8)), method="L-BFGS-B").x
    direct = np.exp(best - best.max())
    direct /= direct.sum()
    assert nll(np.log(np.maximum(em, 1e-300))) <= nll(best) + 1e-3
    np.testing.assert_allclose(em, direct, atol=2e-3)


def test_nnls_equals_bounded_least_squares(shared_data: Path, tmp_path: Path) -> None:
    reference = read_region_counts(shared_data / TIM)
    joined = join_tables(read_region_counts(_mixture_table(reference, tmp_path / "mix.tsv", seed=5)), reference)
    got = deconvolve_table(joined, ["nnls"], n_boot=0)["mix"][0].proportions
    has = joined.depth[:, 0] >= 1
    fit = lsq_linear(joined.beta[has], joined.meth[has, 0] / joined.depth[has, 0], bounds=(0, np.inf)).x
    np.testing.assert_allclose(got, fit / fit.sum(), atol=1e-6)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("chrom\tstart\tend\ta_meth\ta_depth\nchr1\t10\t20\t5\t3\n", r":2: a: 5 methylated calls of 3"),
    ("chrom\tstart\tend\ta_meth\tb_depth\nchr1\t10\t20\t1\t3\n", r":1: columns 4-5 .* not a <name>_meth"),
    ("chr1\t10\t20\t1\t3\n", r":1: a count table needs a header"),
    ("chrom\tstart\tend\ta_meth\ta_depth\nchr1\t20\t10\t1\t3\n", r":2: region chr1:20-10 has end <= start"),
    ("chrom\tstart\tend\ta_meth\ta_depth\nchr1\t10\t20\t1\t-3\n", r":2: a_depth must be a finite count >= 0"),
    ("chrom\tstart\tend\ta_meth\ta_depth\nchr1\t10\t20\t1\n", r":2: 4 columns, the header has 5"),
    ("chrom\tstart\tend\ta_meth\ta_depth\nchr1\t10\t20\t1\t3\nchr1\t10\t20\t1\t3\n", r":3: region chr1:10-20 repeats line 2"),
])
def test_bad_tables_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        read_region_counts(_write(tmp_path / "bad.tsv", text))


def test_tables_of_other_coordinates_share_no_region(shared_data: Path, tmp_path: Path) -> None:
    reference = read_region_counts(shared_data / TIM)
    lines = ["chrom\tstart\tend\ts_meth\ts_depth"]
    lines += [f"{c}\t{s + 1}\t{e + 1}\t3\t10" for c, s, e in reference.keys]  # shifted by one base
    with pytest.raises(TissueBertError, match="no region of .* is in the reference"):
        join_tables(read_region_counts(_write(tmp_path / "shifted.tsv", "\n".join(lines) + "\n")), reference)
    joined = join_tables(read_region_counts(_mixture_table(reference, tmp_path / "mix.tsv")), reference)
    with pytest.raises(TissueBertError, match="need reads"):
        deconvolve_table(joined, ["uxm"], n_boot=0)


def test_cli_writes_one_table_for_every_sample_column(shared_data: Path, tmp_path: Path, capsys) -> None:
    from tissuebert.cli.app import main
    from tissuebert.deconvolve.output import read_proportions_tsv

    atlas = shared_data / TIM
    reference = read_region_counts(atlas)
    one = _mixture_table(reference, tmp_path / "a.tsv", seed=1).read_text().splitlines()
    two = _mixture_table(reference, tmp_path / "b.tsv", seed=2).read_text().splitlines()
    both = [f"{x}\t{y.split(chr(9), 3)[3].replace('mix_', 'other_')}" for x, y in zip(one, two)]
    table = _write(tmp_path / "cohort.tsv", "\n".join(both) + "\n")
    out = tmp_path / "deconv"
    args = ["deconvolve", str(table), "--format", "region-counts", "--atlas", str(atlas), "--method", "em,nnls",
            "--bootstrap", "20", "--out", str(out)]
    assert main(args) == 0
    joined = join_tables(read_region_counts(table), reference)
    expect = deconvolve_table(joined, ["em", "nnls"], n_boot=20)
    for sample in ("mix", "other"):
        got = read_proportions_tsv(out / sample / "proportions.tsv")
        for res in expect[sample]:
            for tissue, value in zip(res.tissues, res.proportions):
                assert abs(got[res.method][tissue] - value) < 1e-6
    matrix = (out / "cohort_matrix.tsv").read_text().splitlines()
    assert [line.split("\t")[:2] for line in matrix[1:]] == [["mix", "em"], ["mix", "nnls"], ["other", "em"],
                                                            ["other", "nnls"]]
    capsys.readouterr()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refusals = [
        (["--checkpoint", "x.pt"], "uses no --checkpoint"),
        (["--method", "uxm"], "need reads"),
        (["--force", "--atlas", str(table).replace("cohort", "nothing")], "not found"),
    ]
    for extra, message in refusals:
        assert main([*args, *extra]) == 2
        assert message in capsys.readouterr().err
    no_atlas = [a for a in args if a not in ("--atlas", str(atlas))]
    assert main([*no_atlas, "--force"]) == 2 and "needs --atlas" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
