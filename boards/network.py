"""A network for a board: dense layers optionally with their weights in ROMs, and the choice of
reuse factors from a multiplier budget."""

from amaranth.lib import wiring

from nnfab.errors import BoardError
from nnfab.gen.assemble import Network, engine_for
from nnfab.hdl.dense_rom import DenseRomEngine, rom_reuse_factors

__all__ = ["BoardNetwork", "choose_rom_reuse_factors"]


def choose_rom_reuse_factors(model, *, max_multipliers):
    """Reuse factors of :class:`~nnfab.hdl.dense_rom.DenseRomEngine` for every dense layer.

    The slowest layer sets the pace: the network's initiation interval is the smallest reuse
    factor that keeps that layer within ``max_multipliers`` multipliers; every other layer
    then takes the largest reuse factor not above it (the fewest multipliers that do not slow
    the network down).

    Returns
    -------
    dict of str to int
        Reuse factors by layer name.

    Raises
    ------
    BoardError
        If ``max_multipliers`` is not a positive integer.
    """
    if not isinstance(max_multipliers, int) or max_multipliers < 1:
        raise BoardError(f"Multiplier budget must be a positive integer, not "
                         f"{max_multipliers!r}")
    dense = [layer for layer in model.layers if layer.kind == "dense"]
    minimal = {}
    for layer in dense:
        n_products = layer.spec.n_in * layer.spec.n_out
        minimal[layer.name] = min(r for r in rom_reuse_factors(layer.spec.n_in,
                                                                layer.spec.n_out)
                                  if n_products // r <= max_multipliers)
    if not minimal:
        return {}
    pace = max(minimal.values())
    return {layer.name: max(r for r in rom_reuse_factors(layer.spec.n_in, layer.spec.n_out)
                            if r <= pace) for layer in dense}


class BoardNetwork(Network):
    """:class:`~nnfab.gen.assemble.Network` whose dense layers may hold their weights in ROMs.

    Parameters
    ----------
    model : nnfab.gen.ir.Model
    rom_reuse_factors : dict of str to int, optional
        Dense layers (by name) built as :class:`~nnfab.hdl.dense_rom.DenseRomEngine` with
        these reuse factors; the other layers are built as :class:`Network` builds them.
    multiplier_threshold : int
        As :class:`~nnfab.hdl.dense.DenseEngine`.

    Raises
    ------
    BoardError
        If ``rom_reuse_factors`` names a layer that is not a dense layer of the model.
    """

    def __init__(self, model, *, rom_reuse_factors=None, multiplier_threshold=3):
        rom = dict(rom_reuse_factors or {})
        dense_names = [layer.name for layer in model.layers if layer.kind == "dense"]
        for name in rom:
            if name not in dense_names:
                raise BoardError(f"Layer {name!r} is not a dense layer of model "
                                 f"{model.name!r} (dense layers: {', '.join(dense_names)})")
        self._model = model
        self._rom_reuse_factors = rom
        self._multiplier_threshold = multiplier_threshold
        self._timing = None
        self._engines = []
        for layer in model.layers:
            if layer.name in rom:
                engine = DenseRomEngine(layer.spec, reuse_factor=rom[layer.name])
            else:
                engine = engine_for(layer, multiplier_threshold=multiplier_threshold)
            self._engines.append((layer, engine))
        first, last = self._engines[0][1], self._engines[-1][1]
        wiring.Component.__init__(self, {"i": first.signature.members["i"],
                                         "o": last.signature.members["o"]})

    def _fresh_copy(self):
        return BoardNetwork(self._model, rom_reuse_factors=self._rom_reuse_factors,
                            multiplier_threshold=self._multiplier_threshold)

    @property
    def rom_reuse_factors(self):
        return dict(self._rom_reuse_factors)
