"""Writes docs/gallery.md and its pictures (docs/gallery/*.svg): every shipped spec with its
picture, its size and one sentence. Run it after changing a spec or the drawing:

    .venv/bin/python docs/gallery.py          # needs Graphviz for the pictures

`tests/test_docs.py` checks that the page matches the specs (the pictures are not compared:
Graphviz versions differ in their SVG)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import ssnc
from ssnc.backends.dot import legible_depth, render, to_dot
from ssnc.compiler.values import show
from ssnc.output import write_atomic

DOCS = Path(__file__).resolve().parent
SPECS = DOCS.parent / "specs"

SENTENCES = {
    "cic_cifar.ssn": "Convolution in Convolution: Network in Network whose 1×1 MLP layers "
                     "are sparse, each channel reading only its neighbouring channels.",
    "fractalnet.ssn": "FractalNet for CIFAR in the PyTorch port's layout: five fractal blocks "
                      "of three columns joined by means, with local and global drop-path.",
    "fractalnet_caffe.ssn": "FractalNet as the authors' Caffe code builds it: biased "
                            "convolutions, BatchNorm without affine, every column pooled "
                            "before the block's last join.",
    "fractalnet_digits.ssn": "A two-block FractalNet for scikit-learn's 8×8 digits, small "
                             "enough to train on a CPU in seconds (examples/train_digits.py).",
    "hmrnn_charlm.ssn": "The Hierarchical Multiscale LSTM character model of the Penn Treebank "
                        "experiments: three layers that learn their own boundaries.",
    "hornn_lm.ssn": "A higher-order RNN language model: the hidden state is fed back from the "
                    "three preceding steps, each along its own weighted path.",
    "hyperlstm_charlm.ssn": "A HyperLSTM character model: a small LSTM rescales the main "
                            "LSTM's weight rows and biases at every step.",
    "hyper_wrn.ssn": "Hyper-WRN: the Wide ResNet below with every 3×3 kernel of its groups "
                     "generated, tile by tile, by one shared static hypernetwork.",
    "nin_cifar10.ssn": "Network in Network for CIFAR-10: three mlpconv stages (a convolution "
                       "followed by 1×1 convolutions) and global average pooling.",
    "resnet18.ssn": "ResNet-18 in torchvision's layout: a 7×7 stem, four stages of two "
                    "basic blocks with strided 1×1 projections, the model docs/weights.md "
                    "loads a torchvision checkpoint into.",
    "inception_v3.ssn": "Inception-v3 in torchvision's layout: 7×7 and 3×3 convolutions "
                        "factorised into 1×7 and 7×1 (1×3 and 3×1) ones, and the auxiliary "
                        "classifier as a second output.",
    "tcn.ssn": "A temporal convolutional network: residual blocks of dilated causal 1-D "
               "convolutions over a series of any length, a prediction at every step.",
    "vit.ssn": "The Vision Transformer ViT-B/16: 16×16 patches as tokens, a learned class "
               "token and position embedding, twelve pre-norm encoder blocks.",
    "seq2seq_transformer.ssn": "An encoder-decoder Transformer with two inputs: the "
                               "encoder's memory read by every decoder block's "
                               "cross-attention, padding masked as keys.",
    "mobilenetv2.ssn": "MobileNetV2: inverted residual blocks of 1×1 expansions, depthwise "
                       "3×3 convolutions and linear projections, with ReLU6.",
    "resnet_rnn.ssn": "A ResNet as an unrolled RNN: in each stage, after the block that "
                      "changes the width, one shared block applied again and again.",
    "resnet20_a.ssn": "CIFAR ResNet-20 with parameter-free shortcuts: subsampled and "
                      "zero-padded where a stage widens.",
    "rir_cifar.ssn": "ResNet in ResNet: two streams side by side, a residual one with "
                     "shortcuts and a transient one without, crossing at every layer.",
    "transformer_lm.ssn": "A small causal Transformer language model: two pre-norm blocks of "
                          "masked self-attention and a GELU feed-forward network.",
    "treenet.ssn": "A recursive net: the eight positions of a sentence are the leaves of a "
                   "binary tree whose inner nodes all apply one shared composition cell.",
    "unet.ssn": "U-Net as the widely used PyTorch port builds it, written as one recursive "
                "level: down by max-pooling, up by transposed convolutions joined to the skips.",
    "wrn.ssn": "Wide ResNet for CIFAR in the authors' layout: three groups of pre-activation "
               "basic blocks, 16k, 32k and 64k channels wide.",
}


@dataclass
class Entry:
    """One model of one shipped spec, as the gallery shows it."""

    spec: str
    model: ssnc.Model
    depth: int | None

    @property
    def picture(self) -> str:
        return f"gallery/{self.model.name}.svg"

    def markdown(self) -> str:
        m = self.model
        shown = "every op" if self.depth is None else f"scopes collapsed below depth {self.depth}"
        defaults = ", ".join(f"{k} = {show(v)}" for k, v in m.ir.params.items())
        return "\n".join([
            f"## `{m.name}` ([specs/{self.spec}](../specs/{self.spec}))", "",
            SENTENCES[self.spec], "",
            f"- input `{m.ir.input_type}`, parameters ({defaults})",
            f"- {m.total_params:,} parameters, {m.op_count:,} ops",
            f"- drawn with `ssnc graph specs/{self.spec} -o {m.name}.svg"
            + (f" --depth {self.depth}`" if self.depth is not None else "`") + f" ({shown})",
            "", f"![{m.name}]({self.picture})", ""])


def entries() -> list[Entry]:
    """Every model of every shipped spec, with its default parameters."""
    out = []
    for path in sorted(SPECS.glob("*.ssn")):
        if path.name not in SENTENCES:
            raise SystemExit(f"docs/gallery.py: write one sentence for {path.name} in SENTENCES")
        program = ssnc.load(path)
        for name in program.models:
            model = program.model(name)
            out.append(Entry(path.name, model, legible_depth(model.ir)))
    return out


def page(items: list[Entry]) -> str:
    """The text of docs/gallery.md."""
    head = ["# Gallery", "",
            "Every spec shipped in `specs/`, drawn by `ssnc graph` with its default "
            "parameters (collapsed until the picture has at most 60 boxes). Generated by "
            "`docs/gallery.py`; do not edit by hand.", ""]
    return "\n".join(head + [e.markdown() for e in items]).rstrip("\n") + "\n"


def main() -> None:
    items = entries()
    (DOCS / "gallery").mkdir(exist_ok=True)
    for e in items:
        text = to_dot(e.model.ir, e.depth)
        write_atomic(DOCS / e.picture, lambda tmp, text=text, e=e: render(  # type: ignore[misc]
            text, "svg", DOCS / e.picture, tmp))
    write_atomic(DOCS / "gallery.md", lambda tmp: tmp.write_text(page(items), encoding="utf-8"))
    print(f"wrote docs/gallery.md and {len(items)} pictures", file=sys.stderr)


if __name__ == "__main__":
    main()
