"""The models a run executes and their runtimes: detectors, embedders, the weight-free descriptor, the
one ONNX Runtime / OpenVINO session factory, dynamic-batch copies, quantisation and the safety check
of pickled weights (docs/design.md §3.2, §3.4)."""
