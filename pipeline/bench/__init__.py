"""Measurement tools apart from the pipeline (``reidpipe bench``): throughput, embedder speed,
engines, linking on synthetic tracklets, the ablation, the gallery's query time and the machine's
description. Production modules never import from here (tests/contract/test_import_graph.py)."""
