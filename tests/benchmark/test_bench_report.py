"""report.html: every table cell shows the number of its column (the figures are stubbed out)."""

from __future__ import annotations

from html.parser import HTMLParser

from tissuebert.benchmark import report
from tissuebert.constants import OUT


class _Tables(HTMLParser):
    """Rows of every <table> as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _stats(base: float) -> dict:
    # distinct values per column, so a cell showing another column's number is caught
    return {"mae": base + 0.0011, "rmse": base + 0.0022, "pearson_r": base + 0.0033, "fp_mass": base + 0.0044,
            "bias": 0.0}


def test_report_columns_show_their_own_metric(tmp_path, monkeypatch):
    png = b"\x89PNG\r\n\x1a\n"
    for name in ("plot_scatter", "plot_lod", "plot_spike", "plot_depth"):
        monkeypatch.setattr(report, name, lambda path, *args: path.write_bytes(png))
    result = {
        "methods": {"em": {"per_depth": {"10x": _stats(0.1), "100x": _stats(0.2)}, "lod": {"Liver": {"lod": 0.01}}},
                    "uxm": {"per_depth": {"10x": _stats(0.05), "100x": _stats(0.3)}, "lod": {"Liver": {"lod": None}}}},
        "design": {"n_dirichlet": 5, "spike_depth": 10.0, "spike_levels": [0.0, 0.01], "replicates": 3},
        "n_mixtures": 16, "pool_reads": 100, "tissues": ["Blood", "Liver"], "n_windows": 12, "checkpoint": "m.pt",
    }
    report.write_report(tmp_path, result, None, {})
    page = (tmp_path / OUT.BENCHMARK_HTML).read_text()
    parser = _Tables()
    parser.feed(page)
    accuracy, lod = parser.tables
    assert accuracy[0] == ["method", "10x MAE", "10x RMSE", "10x r", "10x FP mass",
                           "100x MAE", "100x RMSE", "100x r", "100x FP mass"]
    assert accuracy[1] == ["em", "0.1011", "0.1022", "0.1033", "0.1044", "0.2011", "0.2022", "0.2033", "0.2044"]
    assert accuracy[2] == ["uxm", "0.0511", "0.0522", "0.0533", "0.0544", "0.3011", "0.3022", "0.3033", "0.3044"]
    assert lod == [["tissue", "em", "uxm"], ["Liver", "1%", "\u2014"]]
    # the lowest MAE of each depth is bold, and only it
    assert page.count("<b>0.") == 2 and "<b>0.0511</b>" in page and "<b>0.2011</b>" in page
