"""bm-eval's scoring: predicted label maps against ground truth per folder (folders), and its charts (charts)."""
