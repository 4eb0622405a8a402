"""An op named like ssnc's own `conv`: refused (E0701)."""

from ssnc.plugin import OnnxLowering, TorchLowering, op

conv = op("conv", "Not ssnc's conv.", torch=TorchLowering(expr="{0}"),
          onnx=OnnxLowering(op_type="Identity"))
