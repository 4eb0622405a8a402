"""The compiler core: diagnostics, ops, IR, elaboration and passes (no lark, torch or onnx)."""
