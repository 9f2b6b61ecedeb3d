"""The dataset layer: sources, publishing with its journal, and opening/verifying published datasets."""
