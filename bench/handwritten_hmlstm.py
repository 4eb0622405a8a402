"""A hand-written PyTorch HM-LSTM (Chung, Ahn & Bengio 2016), as a practitioner would write it
from docs/reference.md's equations: per layer a bottom-up, a recurrent (with the bias) and a
top-down linear map, the three output-module gates as one linear map, `torch.where` for
COPY/UPDATE/FLUSH, and a straight-through step. The baseline of bench/bench_rnn.py; its
parameters are loaded from the compiled `hmrnn` (`load_from`), so both compute the same."""

from __future__ import annotations

import torch
from torch import nn


class HMLSTM(nn.Module):
    """[N, T, d_in] -> [N, T, out_dim]: the output module's h^e at every step."""

    def __init__(self, d_in: int, dim: int, layers: int, out_dim: int, slope: float = 1.0,
                 ln: bool = False):
        super().__init__()
        self.dim, self.layers, self.slope, self.ln = dim, layers, slope, ln
        # layer norm as Ba et al.'s LN-LSTM: the gates' pre-activations, the cell before tanh
        self.gate_norm = nn.ModuleList(nn.LayerNorm(4 * dim) for _ in range(layers if ln else 0))
        self.cell_norm = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers if ln else 0))
        rows = [4 * dim + (1 if layer < layers - 1 else 0) for layer in range(layers)]
        self.bottom_up = nn.ModuleList(nn.Linear(d_in if layer == 0 else dim, rows[layer],
                                                 bias=False) for layer in range(layers))
        self.recurrent = nn.ModuleList(nn.Linear(dim, rows[layer]) for layer in range(layers))
        self.top_down = nn.ModuleList(nn.Linear(dim, rows[layer], bias=False)
                                      for layer in range(layers - 1))
        self.gates = nn.Linear(layers * dim, layers, bias=False)
        self.out = nn.ModuleList(nn.Linear(dim, out_dim, bias=False) for _ in range(layers))

    def load_from(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Copy the weights of a compiled `hmrnn` whose cell scope is ``prefix``."""
        with torch.no_grad():
            for layer in range(self.layers):
                p = prefix + "hm_layer." * (layer + 1)
                self.bottom_up[layer].weight.copy_(state[p + "linear1.weight"])
                self.recurrent[layer].weight.copy_(state[p + "linear2.weight"])
                self.recurrent[layer].bias.copy_(state[p + "linear2.bias"])
                if layer < self.layers - 1:
                    self.top_down[layer].weight.copy_(state[p + "linear3.weight"])
                self.out[layer].weight.copy_(state[prefix + f"linear{2 * layer + 2}.weight"])
                if self.ln:
                    for norm, key in ((self.gate_norm[layer], "layernorm"),
                                      (self.cell_norm[layer], "hm_norm.layernorm")):
                        norm.weight.copy_(state[p + key + ".weight"])
                        norm.bias.copy_(state[p + key + ".bias"])
            self.gates.weight.copy_(torch.cat([state[prefix + f"linear{2 * k + 1}.weight"]
                                               for k in range(self.layers)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps, _ = x.shape
        d = self.dim
        h = [x.new_zeros(n, d) for _ in range(self.layers)]
        c = [x.new_zeros(n, d) for _ in range(self.layers)]
        z = [x.new_zeros(n, 1) for _ in range(self.layers - 1)]
        outputs = []
        for t in range(steps):
            below, z_below = x[:, t], None
            for layer in range(self.layers):
                top = layer == self.layers - 1
                up = self.bottom_up[layer](below)
                a = self.recurrent[layer](h[layer])
                if not top:
                    a = a + z[layer] * self.top_down[layer](h[layer + 1])
                a = a + (up if z_below is None else z_below * up)
                gates = self.gate_norm[layer](a[:, :4 * d]) if self.ln else a
                f, i, o = torch.sigmoid(gates[:, :3 * d]).split(d, 1)
                g = torch.tanh(gates[:, 3 * d:4 * d])
                flush = (torch.zeros_like(z_below if z_below is not None else a[:, :1])
                         if top else z[layer])
                zb = torch.ones_like(flush) if z_below is None else z_below
                c_new = flush * (i * g) + (1 - flush) * (zb * (f * c[layer] + i * g)
                                                         + (1 - zb) * c[layer])
                copy = (1 - flush) * (1 - zb)
                shown = self.cell_norm[layer](c_new) if self.ln else c_new
                h_new = copy * h[layer] + (1 - copy) * (o * torch.tanh(shown))
                h[layer], c[layer] = h_new, c_new
                if not top:
                    soft = torch.clamp((self.slope * a[:, 4 * d:] + 1) / 2, 0, 1)
                    z[layer] = (soft > 0.5).to(soft.dtype) + (soft - soft.detach())
                    below, z_below = h_new, z[layer]
            every = torch.cat(h, 1)
            gates = torch.sigmoid(self.gates(every))
            total = sum(gates[:, k:k + 1] * self.out[k](h[k]) for k in range(self.layers))
            outputs.append(torch.relu(total))  # type: ignore[arg-type]
        return torch.stack(outputs, 1)


class CharLM(nn.Module):
    """embedding >> HM-LSTM >> linear: the hand-written twin of specs/hmrnn_charlm.ssn."""

    def __init__(self, vocab: int, emb: int, dim: int, layers: int, out_dim: int,
                 ln: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = HMLSTM(emb, dim, layers, out_dim, ln=ln)
        self.head = nn.Linear(out_dim, vocab)

    def load_from(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the weights of the compiled model (same sizes)."""
        with torch.no_grad():
            self.embedding.weight.copy_(state["embedding.weight"])
            self.head.weight.copy_(state["linear.weight"])
            self.head.bias.copy_(state["linear.bias"])
        self.rnn.load_from(state, "hmrnn.scan.hm_cell.")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embedding(tokens)))  # type: ignore[no-any-return]
