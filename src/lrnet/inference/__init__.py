"""Running a trained model: images in, label maps out, on PyTorch, ONNX Runtime or OpenVINO.

image (preprocessing) -> predictor (``Predictor``) over backends, chosen by auto; export and
graphs make the ONNX graphs the fast backends run; verify checks an inexact one on this machine;
outputs and video write what comes out.
"""
