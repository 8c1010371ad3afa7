"""`tissuebert deconvolve` on a cohort: inputs resolved without dropping any, unique rows scored
once across samples, one table equal to separate one-sample runs, and intervals that contain
their estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve import proportions_from_loglik
from tissuebert.deconvolve.cohort import unique_cohort_rows
from tissuebert.deconvolve.em import interval_around
from tissuebert.deconvolve.inputs import resolve_inputs
from tissuebert.deconvolve.output import read_proportions_tsv
from tissuebert.deconvolve.sample import SampleInput
from tissuebert.deconvolve.warnings import result_warnings
from tissuebert.errors import TissueBertError


def _table(path):
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_unique_cohort_rows_rebuild_every_sample():
    rng = np.random.default_rng(0)
    samples = []
    for n in (300, 200, 1):
        window = rng.integers(0, 5, size=n)  # few windows and patterns: many rows repeat across samples
        calls = rng.integers(0, 3, size=(n, 2)).astype(np.uint8)
        samples.append(SampleInput(None, window, calls, np.ones(n, np.int64), "x"))
    rows = unique_cohort_rows(samples)
    every = {(int(w), *map(int, c)) for s in samples for w, c in zip(s.window_idx, s.calls)}
    assert rows.n_unique == len(every)  # each distinct (window, pattern) once, across samples
    for s, inv in zip(samples, rows.inverse):
        np.testing.assert_array_equal(rows.window_idx[inv], s.window_idx)
        np.testing.assert_array_equal(rows.calls[inv], s.calls)


def test_inputs_from_paths_globs_sheet_and_no_silent_drop(tmp_path):
    for name in ("a.pat.gz", "b.pat.gz", "c.bam"):
        (tmp_path / name).write_bytes(b"")
    specs = resolve_inputs([str(tmp_path / "*.pat.gz"), str(tmp_path / "c.bam")], fmt=None)
    assert [s.sample_id for s in specs] == ["a", "b", "c"]
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample_id\ttissue\tpath\tformat\nS1\tx\ta.pat.gz\tpat\nS2\tx\tc.bam\tbismark\n")
    specs = resolve_inputs(None, sheet=sheet)
    assert [(s.sample_id, s.path, s.fmt) for s in specs] == [("S1", tmp_path / "a.pat.gz", "pat"),
                                                             ("S2", tmp_path / "c.bam", "bismark")]
    with pytest.raises(TissueBertError, match="given twice"):
        resolve_inputs([str(tmp_path / "a.pat.gz"), str(tmp_path / "a.pat.gz")])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pat.gz").write_bytes(b"")
    with pytest.raises(TissueBertError, match="sample id 'a'"):
        resolve_inputs([str(tmp_path / "a.pat.gz"), str(tmp_path / "sub" / "a.pat.gz")])
    with pytest.raises(TissueBertError, match="matches no file"):
        resolve_inputs([str(tmp_path / "*.cov")])
    slash = tmp_path / "slash.tsv"
    slash.write_text("sample_id\tpath\nx/y\ta.pat.gz\n")
    with pytest.raises(TissueBertError, match="cannot name a folder"):
        resolve_inputs(None, sheet=slash)
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tpath\nS1\ta.pat.gz\n")
    with pytest.raises(TissueBertError, match="sample_id"):
        resolve_inputs(None, sheet=bad)


def test_cohort_table_equals_separate_runs(tiny, tmp_path):
    samples = ["Liver_test0", "Blood_test0", "Lung_test0"]
    # the demo's methods: model EM, logreg (fit once per call), and the store-built references
    common = ["--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--method", "em,logreg,uxm,nnls",
              "--bootstrap", "20", "--precision", "fp32"]
    cohort = tmp_path / "cohort"
    assert main(["deconvolve", *common, *sum((["--sample", s] for s in samples), []), "--out", str(cohort)]) == 0
    header, long_rows = _table(cohort / OUT.COHORT_PROPORTIONS)
    assert header == ["sample", "method", "tissue", "proportion", "ci_low", "ci_high", "reads_used"]
    _, wide_rows = _table(cohort / OUT.COHORT_MATRIX)
    _, mqc_rows = _table(cohort / OUT.MULTIQC)
    info = json.loads((cohort / OUT.RUN_INFO).read_text())
    assert [s["sample"] for s in info["samples"]] == samples
    # three samples of one store share rows: the cohort scores fewer rows than the samples hold
    assert info["unique_rows_scored"] < info["rows"]
    for sample in samples:
        alone = tmp_path / sample
        assert main(["deconvolve", *common, "--sample", sample, "--out", str(alone)]) == 0
        header_alone, rows_alone = _table(alone / OUT.PROPORTIONS)
        mine = [r for r in long_rows if r["sample"] == sample]
        assert len(mine) == len(rows_alone) == 4 * len(tiny.store.tissues)
        for a, b in zip(mine, rows_alone):
            assert (a["method"], a["tissue"]) == (b["method"], b["tissue"])
            for col in ("proportion", "ci_low", "ci_high", "reads_used"):
                assert float(a[col]) == pytest.approx(float(b[col]), abs=2e-6), (sample, col)
        # the per-sample folder holds the same file as a one-sample run
        assert read_proportions_tsv(cohort / sample / OUT.PROPORTIONS) == read_proportions_tsv(alone / OUT.PROPORTIONS)
        em = {r["tissue"]: float(r["proportion"]) for r in mine if r["method"] == "em"}
        wide = next(r for r in wide_rows if r["sample"] == sample and r["method"] == "em")
        mqc = next(r for r in mqc_rows if r["Sample"] == sample)
        for tissue, value in em.items():
            assert float(wide[tissue]) == pytest.approx(value, abs=1e-6)
            assert float(mqc[tissue]) == pytest.approx(100 * value, abs=1e-4)
        assert max(em, key=em.get) == sample.split("_")[0]  # each pure test sample's own tissue
    assert (cohort / OUT.MULTIQC).read_text().startswith("# id: 'tissuebert'")


def test_interval_around_contains_the_estimate_and_keeps_the_spread():
    reps = np.array([[0.10, 0.90], [0.12, 0.88], [0.14, 0.86], [0.16, 0.84], [0.18, 0.82]])
    low, high = interval_around(np.array([0.2, 0.8]), reps, 0.5)
    # quartiles of the first column: 0.12, median 0.14, 0.16 -> 0.2 - 0.02, 0.2 + 0.02
    np.testing.assert_allclose(low, [0.18, 0.78])
    np.testing.assert_allclose(high, [0.22, 0.82])


def test_pure_sample_warns_and_its_interval_contains_the_estimate():
    # every read is far more likely under tissue 0: the ML estimate is all mass on tissue 0
    rng = np.random.default_rng(3)
    loglik = np.column_stack([np.zeros(500), rng.uniform(-12, -8, 500), rng.uniform(-12, -8, 500)])
    res = proportions_from_loglik(loglik, None, ["Blood-B", "Liver", "Lung"], n_boot=40, seed=0)
    assert res.proportions[0] > 0.999
    assert np.all(res.ci_low <= res.proportions) and np.all(res.proportions <= res.ci_high)
    warnings = result_warnings(res)
    assert len(warnings) == 1 and "all mass on one tissue (Blood-B" in warnings[0]
    res.ci_low[0], res.ci_high[0] = 0.5, 0.6  # an interval that misses its estimate is reported
    assert any("outside its own interval" in w for w in result_warnings(res))


@pytest.mark.shared_data
def test_repeated_input_flags_are_all_deconvolved(shared_data, tmp_path):
    data = shared_data / "UXM_deconv" / "tutorial" / "data"
    atlas = shared_data / "UXM_deconv" / "supplemental" / "Atlas.U25.l4.hg19.tsv"
    out = tmp_path / "two"
    assert main(["deconvolve", "--method", "uxm", "--atlas", str(atlas), "-i", str(data / "Liver_STL011.pat.gz"),
                 "-i", str(data / "Pancreas_STL002.pat.gz"), "--bootstrap", "0", "--out", str(out)]) == 0
    _, rows = _table(out / OUT.COHORT_MATRIX)
    top = {r["sample"]: max((t for t in r if t not in ("sample", "method")), key=lambda t: float(r[t])) for r in rows}
    assert top == {"Liver_STL011": "Liver-Hep", "Pancreas_STL002": "Pancreas-Acinar"}  # the published calls
    assert (out / "Pancreas_STL002" / OUT.PROPORTIONS_PNG).is_file()
    # the same file twice is refused, not silently merged
    assert main(["deconvolve", "--method", "uxm", "--atlas", str(atlas), "-i", str(data / "Liver_STL011.pat.gz"),
                 str(data / "Liver_STL011.pat.gz"), "--out", str(tmp_path / "dup")]) == 2


def test_an_uncalibrated_checkpoint_is_a_run_warning_and_a_calibrated_one_is_not(tiny, tmp_path, capsys):
    args = ["deconvolve", "--store", str(tiny.store.root), "--sample", "Liver_test0", "--bootstrap", "0",
            "--no-posteriors", "--device", "cpu"]
    assert main([*args, "--checkpoint", str(tiny.checkpoint), "--out", str(tmp_path / "raw")]) == 0
    assert "is not calibrated" in capsys.readouterr().err
    warnings = json.loads((tmp_path / "raw" / OUT.RUN_INFO).read_text())["warnings"]
    assert len(warnings) == 1 and str(tiny.checkpoint) in warnings[0] and "tissuebert calibrate" in warnings[0]
    calibrated = tmp_path / "cal.pt"
    assert main(["calibrate", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out",
                 str(calibrated), "--max-reads-per-sample", "200", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main([*args, "--checkpoint", str(calibrated), "--out", str(tmp_path / "cal")]) == 0
    assert "is not calibrated" not in capsys.readouterr().err
    assert not any("calibrat" in w for w in json.loads((tmp_path / "cal" / OUT.RUN_INFO).read_text())["warnings"])
