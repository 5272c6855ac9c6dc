"""Recurrent cells and layers written from the notes' equations (course 5, sequence models).

Cells (one time step):

* :class:`RNNCell`: the vanilla (Elman) cell, ``a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)``.
* :class:`GRUCell`: the gated recurrent unit (Cho et al. 2014), with the relevance gate
  ``Gamma_r`` and the update gate ``Gamma_u``.
* :class:`LSTMCell`: the long short-term memory (Hochreiter & Schmidhuber 1997, with the forget
  gate of Gers et al. 2000): update, forget and output gates, memory ``c`` and output ``a``.

Layers over a sequence (:class:`RNN`, :class:`GRU`, :class:`LSTM`) stack cells
(``num_layers``), optionally run a second stack over the reversed sequence (``bidirectional``),
read ``(B, T, D)`` (or ``(T, B, D)`` with ``batch_first=False``) and take optional ``lengths``:
a padded step leaves the state as it was, so the final state of each sequence is its last real
state and padding never changes it; outputs at padded steps are zero.

Every cell keeps its parameters in the layout of ``torch.nn.RNNCell/GRUCell/LSTMCell``
(``weight_ih (G*H, D)``, ``weight_hh (G*H, H)``, ``bias_ih (G*H,)``, ``bias_hh (G*H,)`` with G
the number of gate blocks: 1, 3 in torch's order ``r, z, n``, 4 in torch's order ``i, f, g, o``)
and every layer maps its cells to torch's names (``weight_ih_l{k}[_reverse]`` ...), so that
weights go both ways: :func:`from_torch` builds a hand-written twin of a torch module,
:func:`load_torch_weights` copies a torch module's (or state dict's) weights into a hand-written
one, and :meth:`RecurrentLayer.to_torch` builds the torch module back. ``fused=True`` runs the
same parameters through torch's fused kernels (cuDNN on a GPU) for speed; the hand-written path
is the default because it is the one that reads like the notes (and that the FLOP counter sees).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "RNNCell", "GRUCell", "LSTMCell", "RecurrentLayer", "RNN", "GRU", "LSTM",
    "RECURRENT_LAYERS", "recurrent_layer", "from_torch", "load_torch_weights", "length_mask", "draw_tokens",
]

State = tuple[torch.Tensor, ...]  # (a,) for RNN and GRU; (a, c) for LSTM, each (B, H)
Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


# -- cells ----------------------------------------------------------------------------------------
class _Cell(nn.Module):
    """Parameters and plumbing shared by the cells; subclasses write :meth:`recur`.

    The input projection ``W_ix x + b_i`` does not depend on the state, so a layer computes it
    for every time step at once (one matrix product) and the loop only does the recurrent part.
    """

    gate_blocks = 1
    state_size = 1  # tensors in the state: 1 (a), or 2 for the LSTM (a, c)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = self.gate_blocks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))   # (G*H, D)
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))  # (G*H, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation of recurrent layers: every tensor ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``W_ix x + b_i``: (..., D) -> (..., G*H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, xp: torch.Tensor, state: State) -> State:
        """One step from the projected input ``xp`` (B, G*H) and the state (tuple of (B, H))."""
        raise NotImplementedError

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        """Zeros, (B, H) per state tensor, with ``like``'s dtype and device."""
        return tuple(like.new_zeros(batch, self.hidden_size) for _ in range(self.state_size))

    def _state(self, x: torch.Tensor, hx) -> State:
        if hx is None:
            return self.initial_state(x.shape[0], x)
        return (hx,) if isinstance(hx, torch.Tensor) else tuple(hx)

    def forward(self, x: torch.Tensor, hx: Hidden | None = None) -> Hidden:
        """One time step, as torch's cell: x (B, D), state (B, H) -> the next state (B, H)
        (the LSTM takes and returns ``(a, c)``, each (B, H)). A missing state is zeros."""
        squeeze = x.dim() == 1  # an unbatched step (D,), as torch's cells accept
        if squeeze:
            x = x.unsqueeze(0)
            hx = None if hx is None else (hx.unsqueeze(0) if isinstance(hx, torch.Tensor)
                                          else tuple(h.unsqueeze(0) for h in hx))
        state = self.recur(self.input_projection(x), self._state(x, hx))
        if squeeze:
            state = tuple(s.squeeze(0) for s in state)
        return state[0] if self.state_size == 1 else state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """The vanilla recurrent cell.

    ``a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)`` with ``g`` = tanh (or ReLU); torch splits the
    bias in two, ``b_a = b_ih + b_hh``. Parameters as ``torch.nn.RNNCell``.
    Input x (B, D) and a (B, H); output a (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def recur(self, xp: torch.Tensor, state: State) -> State:
        (a,) = state
        z = xp + F.linear(a, self.weight_hh, self.bias_hh)  # W_ax x<t> + W_aa a<t-1> + b_a, (B, H)
        return (torch.tanh(z) if self.nonlinearity == "tanh" else torch.relu(z),)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity=relu")


class GRUCell(_Cell):
    """The gated recurrent unit, the notes' "full GRU" (memory cell ``c`` = output ``a``).

    The notes' equations::

        Gamma_r = sigmoid(W_r [c<t-1>, x<t>] + b_r)                 relevance gate
        Gamma_u = sigmoid(W_u [c<t-1>, x<t>] + b_u)                 update gate
        c~<t>   = tanh(W_c [Gamma_r * c<t-1>, x<t>] + b_c)          candidate memory
        c<t>    = Gamma_u * c~<t> + (1 - Gamma_u) * c<t-1>

    Parameters as ``torch.nn.GRUCell``: gate blocks in torch's order ``r, z, n``. Two things
    differ in how torch writes the same cell, and this cell follows torch so that outputs match:

    * torch's ``z`` is the share of the *old* memory kept, ``h' = (1 - z) * n + z * h``: the
      notes' update gate is ``Gamma_u = 1 - z`` (i.e. ``W_u = -W_z``, ``b_u = -b_z``).
    * with ``reset_after=True`` (default, torch's and cuDNN's form) the relevance gate multiplies
      the recurrent product: ``c~ = tanh(W_cx x + b_in + Gamma_r * (W_cc c + b_hn))``;
      ``reset_after=False`` is the notes' form exactly, ``tanh(W_cx x + b_in + W_cc (Gamma_r * c)
      + b_hn)``, with the same parameters (it has no torch twin, so no fused path).

    Input x (B, D) and c (B, H); output c (B, H).
    """

    gate_blocks = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, reset_after: bool = True):
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, bias)

    def recur(self, xp: torch.Tensor, state: State) -> State:
        (c_prev,) = state
        h = self.hidden_size
        x_r, x_z, x_n = xp.chunk(3, dim=-1)  # each (B, H): W_ix x + b_i per gate
        if self.reset_after:
            c_r, c_z, c_n = F.linear(c_prev, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        else:
            b_rz = None if self.bias_hh is None else self.bias_hh[: 2 * h]
            c_r, c_z = F.linear(c_prev, self.weight_hh[: 2 * h], b_rz).chunk(2, dim=-1)
        gamma_r = torch.sigmoid(x_r + c_r)  # relevance gate: Gamma_r = sigmoid(W_r [c, x] + b_r)
        keep = torch.sigmoid(x_z + c_z)     # torch's z = 1 - Gamma_u
        gamma_u = 1.0 - keep                # update gate: Gamma_u = sigmoid(W_u [c, x] + b_u)
        if self.reset_after:
            # torch's form of c~ = tanh(W_c [Gamma_r * c, x] + b_c): Gamma_r * (W_hn c + b_hn)
            c_tilde = torch.tanh(x_n + gamma_r * c_n)
        else:
            # the notes' form exactly: W_hn (Gamma_r * c) + b_hn
            b_n = None if self.bias_hh is None else self.bias_hh[2 * h:]
            c_tilde = torch.tanh(x_n + F.linear(gamma_r * c_prev, self.weight_hh[2 * h:], b_n))
        # c<t> = Gamma_u * c~<t> + (1 - Gamma_u) * c<t-1>
        return (gamma_u * c_tilde + keep * c_prev,)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")


class LSTMCell(_Cell):
    """The long short-term memory cell, from the notes' equations::

        c~<t>   = tanh(W_c [a<t-1>, x<t>] + b_c)                    candidate memory
        Gamma_u = sigmoid(W_u [a<t-1>, x<t>] + b_u)                 update gate
        Gamma_f = sigmoid(W_f [a<t-1>, x<t>] + b_f)                 forget gate
        Gamma_o = sigmoid(W_o [a<t-1>, x<t>] + b_o)                 output gate
        c<t>    = Gamma_u * c~<t> + Gamma_f * c<t-1>
        a<t>    = Gamma_o * tanh(c<t>)

    Parameters as ``torch.nn.LSTMCell``: gate blocks in torch's order ``i, f, g, o``, i.e.
    update (torch's input gate), forget, candidate, output. State ``(a, c)``, each (B, H);
    input x (B, D); output ``(a, c)``.
    """

    gate_blocks = 4
    state_size = 2

    def recur(self, xp: torch.Tensor, state: State) -> State:
        a_prev, c_prev = state
        gates = xp + F.linear(a_prev, self.weight_hh, self.bias_hh)  # (B, 4H)
        u, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
        gamma_u = torch.sigmoid(u)  # update gate
        gamma_f = torch.sigmoid(f)  # forget gate
        c_tilde = torch.tanh(g)     # candidate memory
        gamma_o = torch.sigmoid(o)  # output gate
        c = gamma_u * c_tilde + gamma_f * c_prev
        a = gamma_o * torch.tanh(c)
        return a, c


# -- layers over a sequence -----------------------------------------------------------------------
def length_mask(lengths: torch.Tensor, steps: int, device: torch.device | None = None) -> torch.Tensor:
    """``mask[b, t] = t < lengths[b]``: (B,) -> (B, T) booleans, True at real steps."""
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


class RecurrentLayer(nn.Module):
    """A stack of recurrent cells over a sequence; see :class:`RNN`, :class:`GRU`, :class:`LSTM`.

    Cells are held in ``cells``, index ``layer * num_directions + direction`` (direction 1 reads
    the sequence backwards). The input of layer ``k > 0`` is the concatenation of both
    directions' outputs of layer ``k - 1``, with dropout between layers in training, as torch.

    ``forward(x, hx=None, lengths=None)`` returns what the torch module returns:

    * ``output``: (B, T, num_directions * H) (``(T, B, ...)`` with ``batch_first=False``), the top
      layer's states, zero at padded steps;
    * the final states: ``h_n`` (num_layers * num_directions, B, H), for the LSTM ``(h_n, c_n)``.

    ``hx`` is the initial state in the same layout (zeros if None). ``lengths`` (B,), integers in
    ``[1, T]`` on any device, marks the real steps of each padded sequence.

    Unlike torch's modules, ``batch_first`` defaults to True (the zoo's batches are (B, T, ...));
    :func:`from_torch` and :meth:`to_torch` carry the flag over as it is.
    """

    cell_class: type[_Cell] = RNNCell
    torch_class: type[nn.RNNBase] = nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 fused: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional, self.fused = bidirectional, fused
        self.num_directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            self._make_cell(input_size if layer == 0 else hidden_size * self.num_directions)
            for layer in range(num_layers) for _ in range(self.num_directions)
        )
        if fused:
            self._check_fusable()

    # subclasses: the cell and the torch module's extra arguments
    def _make_cell(self, input_size: int) -> _Cell:
        return self.cell_class(input_size, self.hidden_size, self.bias)

    def _torch_kwargs(self) -> dict:
        return {}

    def _check_fusable(self) -> None:
        pass

    @property
    def state_size(self) -> int:
        return self.cell_class.state_size

    # -- torch's names ------------------------------------------------------------------------
    def torch_names(self) -> dict[str, nn.Parameter]:
        """Torch's parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse`` ...) -> this layer's
        parameters (the same tensors, not copies)."""
        names = {}
        for index, cell in enumerate(self.cells):
            layer, direction = divmod(index, self.num_directions)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                p = getattr(cell, kind)
                if p is not None:
                    names[kind + suffix] = p
        return names

    def _torch_template(self) -> nn.RNNBase:
        """The torch module this layer fuses to, built on the meta device (it holds no memory):
        forward swaps this layer's parameters in (``torch.func.functional_call``)."""
        template = self.__dict__.get("_template")
        if template is None:
            template = self.torch_class(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                                        batch_first=self.batch_first, dropout=self.dropout,
                                        bidirectional=self.bidirectional, device="meta", **self._torch_kwargs())
            self.__dict__["_template"] = template  # not a submodule: no parameters of its own
        return template

    def to_torch(self) -> nn.RNNBase:
        """A ``torch.nn.RNN/GRU/LSTM`` with a copy of this layer's weights (same device, dtype)."""
        p = next(self.parameters())
        module = self.torch_class(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                                  batch_first=self.batch_first, dropout=self.dropout,
                                  bidirectional=self.bidirectional, device=p.device, dtype=p.dtype,
                                  **self._torch_kwargs())
        module.load_state_dict({k: v.detach().clone() for k, v in self.torch_names().items()})
        return module

    # -- forward ------------------------------------------------------------------------------
    def _initial_states(self, hx, x: torch.Tensor, batch: int) -> list[State]:
        """Per cell, its initial state (tuple of (B, H))."""
        n = self.num_layers * self.num_directions
        if hx is None:
            return [self.cells[0].initial_state(batch, x) for _ in range(n)]
        parts = (hx,) if isinstance(hx, torch.Tensor) else tuple(hx)
        if len(parts) != self.state_size:
            raise ValueError(f"{type(self).__name__} takes {self.state_size} initial state tensor(s), got {len(parts)}")
        for h in parts:
            if h.shape != (n, batch, self.hidden_size):
                raise ValueError(f"initial state of shape {tuple(h.shape)}, expected "
                                 f"(num_layers * num_directions, B, H) = {(n, batch, self.hidden_size)}")
        return [tuple(h[i] for h in parts) for i in range(n)]

    def forward(self, x: torch.Tensor, hx: Hidden | None = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, Hidden]:
        """x (B, T, D) (``(T, B, D)`` without batch_first) -> (output, final states); see the class."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects (B, T, {self.input_size}) input"
                             f"{'' if self.batch_first else ' in (T, B, D) order'}, got {tuple(x.shape)}")
        steps = x.shape[1] if self.batch_first else x.shape[0]
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            batch = x.shape[0] if self.batch_first else x.shape[1]
            if lengths.shape != (batch,):
                raise ValueError(f"lengths must have shape (B,) = ({batch},), got {tuple(lengths.shape)}")
            if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
                raise ValueError(f"lengths must lie in [1, T] = [1, {steps}], got {lengths.tolist()}")
        if self.fused:
            return self._forward_fused(x, hx, lengths, steps)
        return self._forward_cells(x, hx, lengths)

    def _forward_cells(self, x: torch.Tensor, hx, lengths) -> tuple[torch.Tensor, Hidden]:
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, D)
        batch, steps, _ = x.shape
        mask = None if lengths is None else length_mask(lengths, steps, x.device)  # (B, T)
        states = self._initial_states(hx, x, batch)
        finals: list[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                cell = self.cells[index]
                state = states[index]
                xp = cell.input_projection(layer_input)  # (B, T, G*H), every step at once
                per_step: list[torch.Tensor] = [None] * steps  # type: ignore[list-item]
                order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
                for t in order:
                    new = cell.recur(xp[:, t], state)
                    if mask is not None:  # a padded step keeps the state as it was
                        real = mask[:, t, None]  # (B, 1)
                        new = tuple(torch.where(real, n, s) for n, s in zip(new, state))
                    state = new
                    per_step[t] = state[0]
                out = torch.stack(per_step, dim=1) if steps else layer_input.new_zeros(batch, 0, self.hidden_size)
                if mask is not None:
                    out = out.masked_fill(~mask[..., None], 0.0)  # (B, T, H), zero at padding
                outputs.append(out)
                finals.append(state)
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, num_directions * H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        output = layer_input if self.batch_first else layer_input.transpose(0, 1)
        final = tuple(torch.stack([s[i] for s in finals], dim=0) for i in range(self.state_size))  # (L*dirs, B, H)
        return output, (final[0] if self.state_size == 1 else final)

    def _forward_fused(self, x: torch.Tensor, hx, lengths, steps: int) -> tuple[torch.Tensor, Hidden]:
        template = self._torch_template()
        template.train(self.training)  # dropout between layers follows this layer's mode
        inputs = x
        if lengths is not None:
            inputs = pack_padded_sequence(x, lengths.to("cpu", torch.int64), batch_first=self.batch_first,
                                          enforce_sorted=False)
        if isinstance(hx, list):
            hx = tuple(hx)
        output, final = functional_call(template, self.torch_names(), (inputs, hx))
        if lengths is not None:
            output, _ = pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)
        return output, final

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, batch_first={self.batch_first}, "
                f"dropout={self.dropout}, fused={self.fused}")


class RNN(RecurrentLayer):
    """Vanilla recurrent layer (:class:`RNNCell` per layer and direction); torch twin ``nn.RNN``.

    Input (B, T, D) -> output (B, T, dirs * H), h_n (num_layers * dirs, B, H).
    """

    cell_class = RNNCell
    torch_class = nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, fused: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, fused)

    def _make_cell(self, input_size: int) -> _Cell:
        return RNNCell(input_size, self.hidden_size, self.bias, self.nonlinearity)

    def _torch_kwargs(self) -> dict:
        return {"nonlinearity": self.nonlinearity}


class GRU(RecurrentLayer):
    """Gated recurrent layer (:class:`GRUCell` per layer and direction); torch twin ``nn.GRU``.

    ``reset_after=False`` is the notes' exact candidate (no torch twin: not fusable).
    Input (B, T, D) -> output (B, T, dirs * H), h_n (num_layers * dirs, B, H).
    """

    cell_class = GRUCell
    torch_class = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 fused: bool = False, reset_after: bool = True):
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, fused)

    def _make_cell(self, input_size: int) -> _Cell:
        return GRUCell(input_size, self.hidden_size, self.bias, self.reset_after)

    def _check_fusable(self) -> None:
        if not self.reset_after:
            raise ValueError("fused=True needs reset_after=True: torch's GRU applies the relevance gate "
                             "after the recurrent product")

    def to_torch(self) -> nn.RNNBase:
        self._check_fusable()
        return super().to_torch()


class LSTM(RecurrentLayer):
    """Long short-term memory layer (:class:`LSTMCell` per layer and direction); torch twin
    ``nn.LSTM`` (without ``proj_size``).

    Input (B, T, D) -> output (B, T, dirs * H), (h_n, c_n) each (num_layers * dirs, B, H).
    """

    cell_class = LSTMCell
    torch_class = nn.LSTM


RECURRENT_LAYERS: dict[str, type[RecurrentLayer]] = {"rnn": RNN, "gru": GRU, "lstm": LSTM}


def recurrent_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    bidirectional: bool = False, dropout: float = 0.0, fused: bool = False,
                    batch_first: bool = True) -> RecurrentLayer:
    """The layer for a cell name: ``rnn`` | ``gru`` | ``lstm``."""
    if cell not in RECURRENT_LAYERS:
        raise ValueError(f"cell must be one of {', '.join(RECURRENT_LAYERS)}, got {cell!r}")
    return RECURRENT_LAYERS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=batch_first,
                                  dropout=dropout, bidirectional=bidirectional, fused=fused)


# -- weights to and from torch --------------------------------------------------------------------
_TORCH_CELLS = {nn.RNNCell: RNNCell, nn.GRUCell: GRUCell, nn.LSTMCell: LSTMCell}
_TORCH_LAYERS = {nn.RNN: RNN, nn.GRU: GRU, nn.LSTM: LSTM}


def _torch_state(source) -> dict[str, torch.Tensor]:
    return source.state_dict() if isinstance(source, nn.Module) else dict(source)


def load_torch_weights(target: _Cell | RecurrentLayer, source) -> None:
    """Copy the weights of a torch module (``nn.RNN/GRU/LSTM`` or their cells) or of its state
    dict into the hand-written ``target``, in place. Names and shapes must match exactly."""
    if isinstance(source, nn.LSTM) and source.proj_size:
        raise ValueError("an LSTM with proj_size has no hand-written twin here")
    state = _torch_state(source)
    if isinstance(target, RecurrentLayer):
        own = target.torch_names()
    else:
        own = {k: getattr(target, k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
               if getattr(target, k) is not None}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"torch weights do not fit {type(target).__name__}: missing {missing}, "
                         f"unexpected {unexpected}")
    with torch.no_grad():
        for name, p in own.items():
            if state[name].shape != p.shape:
                raise ValueError(f"{name}: torch has {tuple(state[name].shape)}, {type(target).__name__} "
                                 f"has {tuple(p.shape)}")
            p.copy_(state[name])


def from_torch(module: nn.Module, fused: bool = False) -> _Cell | RecurrentLayer:
    """A hand-written twin of ``torch.nn.RNN/GRU/LSTM`` (or ``RNNCell/GRUCell/LSTMCell``) with a
    copy of its weights, on its device and in its dtype. ``fused`` applies to layers."""
    p = next(module.parameters())
    if type(module) in _TORCH_CELLS:
        cls = _TORCH_CELLS[type(module)]
        kwargs = {"nonlinearity": module.nonlinearity} if cls is RNNCell else {}
        twin: nn.Module = cls(module.input_size, module.hidden_size, module.bias, **kwargs)
    elif type(module) in _TORCH_LAYERS:
        if getattr(module, "proj_size", 0):
            raise ValueError("an LSTM with proj_size has no hand-written twin here")
        cls = _TORCH_LAYERS[type(module)]
        kwargs = {"nonlinearity": module.nonlinearity} if cls is RNN else {}
        twin = cls(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=module.bias,
                   batch_first=module.batch_first, dropout=float(module.dropout),
                   bidirectional=module.bidirectional, fused=fused, **kwargs)
    else:
        raise TypeError(f"from_torch takes torch.nn.RNN/GRU/LSTM or their cells, got {type(module).__name__}")
    twin.to(device=p.device, dtype=p.dtype)
    load_torch_weights(twin, module)
    twin.train(module.training)
    return twin


# -- sampling ------------------------------------------------------------------------------------

@torch.no_grad()
def draw_tokens(net: nn.Module, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                top_k: int | None = None, generator: torch.Generator | None = None,
                end_token: int | None = None, banned: Sequence[int] = ()) -> torch.Tensor:
    """Tokens drawn after ``prompt`` (B, T0) from a net with ``forward_with_state(tokens, state)
    -> (logits (B, T, V), state)``: the prompt is read once, then each drawn token is fed back
    with the carried state. The logits are divided by ``temperature`` (0: the argmax), all but
    the ``top_k`` best are removed, and ``banned`` ids (padding, the start token) are never
    drawn. After ``end_token`` a row repeats it. Returns (B, max_new_tokens) ids."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be a positive integer or null, got {top_k}")
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"a prompt must be token ids (B, T0) with T0 >= 1, got {tuple(prompt.shape)}")
    logits, state = net.forward_with_state(prompt)
    logits = logits[:, -1]  # (B, V): the scores of the first new token
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    drawn = []
    for _ in range(int(max_new_tokens)):
        scores = logits.float()
        if banned:
            scores[:, list(banned)] = float("-inf")
        if temperature == 0:
            token = scores.argmax(-1)  # (B,)
        else:
            scores = scores / temperature
            if top_k is not None and int(top_k) < scores.shape[-1]:
                kth = scores.topk(int(top_k), dim=-1).values[:, -1:]  # (B, 1): the k-th best score
                scores = scores.masked_fill(scores < kth, float("-inf"))
            token = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator).squeeze(1)  # (B,)
        if end_token is not None:
            token = torch.where(done, torch.full_like(token, end_token), token)
            done |= token == end_token
        drawn.append(token)
        if end_token is not None and bool(done.all()):
            break
        logits, state = net.forward_with_state(token[:, None], state)
        logits = logits[:, -1]
    out = torch.stack(drawn, 1) if drawn else prompt.new_zeros(prompt.shape[0], 0)
    if end_token is not None and out.shape[1] < max_new_tokens:  # every row ended early
        out = torch.cat([out, out.new_full((out.shape[0], int(max_new_tokens) - out.shape[1]), end_token)], 1)
    return out
