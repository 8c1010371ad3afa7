from tissuebert.model.tissuebert import TissueBERT, build_model, count_parameters

__all__ = ["TissueBERT", "build_model", "count_parameters"]
