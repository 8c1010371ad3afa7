"""tissuebert: a BERT-style transformer that classifies DNA methylation reads by tissue of origin
and deconvolves cell-free DNA samples into tissue proportions."""

__version__ = "0.1.0"

__all__ = ["__version__"]
