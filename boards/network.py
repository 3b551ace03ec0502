"""A network for a board: dense layers optionally with their weights in ROMs (TFLite's output
stage fused into them where it keeps their pace), and the choice of reuse factors from a
multiplier budget."""

from nnfab.errors import BoardError
from nnfab.gen.assemble import ENGINES, Backend
from nnfab.hdl.dense_rom import DenseRomEngine
from nnfab.hdl.output_stage import OutputStageEngine
from nnfab.ir import RomDenseLayer
from nnfab.layers import rom_requantizer_keeps_pace, rom_reuse_factors

__all__ = ["rom_backend", "choose_rom_reuse_factors", "given_rom_reuse_factors",
           "fuse_rom_output_stages"]


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


def given_rom_reuse_factors(model, reuse, *, max_multipliers):
    """ROM reuse factors of every dense layer of ``model`` from the user's ``reuse`` (``nnfab
    build --board --reuse-factor``): an int ``R`` gives each layer the largest ROM reuse factor
    up to ``R``; a dict of layer name to reuse factor sets the layers named, exactly, and the
    others get :func:`choose_rom_reuse_factors`'s choice for ``max_multipliers``; None
    chooses them all so.

    Raises
    ------
    BoardError
        If a name is not a dense layer of ``model`` (a layer fused into a shift-add adder
        graph has no reuse factor on a board), or a reuse factor is not a divisor of the
        layer's ``n_in`` times a divisor of its ``n_out`` (the message lists the ones it
        takes).
    """
    dense = {layer.name: layer for layer in model.layers if layer.kind == "dense"}
    if isinstance(reuse, int):
        return {name: max(r for r in rom_reuse_factors(layer.spec.n_in, layer.spec.n_out)
                          if r <= reuse) for name, layer in dense.items()}
    chosen = choose_rom_reuse_factors(model, max_multipliers=max_multipliers)
    for name, r in (reuse or {}).items():
        if name not in dense:
            raise BoardError(
                f"Reuse factor given for {name!r}, which is not a dense layer with its weights "
                f"in block RAM in model {model.name!r} (those are: "
                f"{', '.join(dense) or 'none'}); a dense layer built as a shift-add adder "
                f"graph (weights of at most 3 signed digits, at reuse factor 1) takes none: "
                f"--no-fuse keeps every dense layer in block RAM")
        layer = dense[name]
        valid = rom_reuse_factors(layer.spec.n_in, layer.spec.n_out)
        if r not in valid:
            raise BoardError(f"Layer {name!r}: a reuse factor with its weights in block RAM "
                             f"must be a divisor of n_in {layer.spec.n_in} times a divisor "
                             f"of n_out {layer.spec.n_out} (one of "
                             f"{', '.join(map(str, valid))}), not {r}")
        chosen[name] = r
    return chosen


def fuse_rom_output_stages(model, rom_reuse_factors):
    """``model`` with every dense layer of ``rom_reuse_factors`` (name to ROM reuse factor)
    that only a TFLite ``output_stage`` layer reads fused with it into a
    :class:`~nnfab.ir.RomDenseLayer` of the dense layer's name, where the stage's one
    requantizer lane keeps the layer's pace (:func:`nnfab.layers.rom_requantizer_keeps_pace`).
    The results are then int8 registers instead of accumulator-wide ones and the stage's own
    registers are gone (ad01: its engines' 70,868 register bits become 32,336). Same codes: the
    golden model of the fused layer is its parts'.
    """
    consumers = model.consumers()
    by_name = {layer.name: layer for layer in model.layers}
    fused, out = set(), []
    for layer in model.layers:
        if layer.name in fused:
            continue
        readers = consumers.get(layer.name, [])
        stage = by_name[readers[0]] if len(readers) == 1 else None
        r = rom_reuse_factors.get(layer.name)
        if layer.kind == "dense" and r is not None and stage is not None and \
                stage.kind == "output_stage" and \
                rom_requantizer_keeps_pace(layer.spec.n_in, layer.spec.n_out, r):
            out.append(RomDenseLayer(layer.name, parts=(layer, stage), rom_reuse_factor=r))
            fused.add(stage.name)
        else:
            out.append(layer)
    return model.replace_layers(out) if fused else model


def rom_backend(model, rom_reuse_factors=None, *, multiplier_threshold=3, clock_mhz=None,
                family=None):
    """The board backend: :data:`~nnfab.gen.assemble.CONSTANT_WEIGHTS` except that the dense
    layers named in ``rom_reuse_factors`` become :class:`~nnfab.hdl.dense_rom.DenseRomEngine`
    with those reuse factors (weights in ROMs), and the TFLite output stage (``output_stage``)
    reading one of them an :class:`~nnfab.hdl.output_stage.OutputStageEngine` at that
    layer's pace (reuse factor ``min(channels, R)``, one lane for the usual ``R >= channels``)
    with ``hold_input``: no register holds the ROM layer's output vector a second time.
    With ``clock_mhz`` and ``family`` the ROM engines place their output cast's register for
    that clock (:class:`~nnfab.hdl.dense_rom.DenseRomEngine`'s ``split_cast``).

    Raises
    ------
    BoardError
        If ``rom_reuse_factors`` names a layer that is not a dense layer of ``model``.
    """
    rom = dict(rom_reuse_factors or {})
    dense_names = [layer.name for layer in model.layers if layer.kind in ("dense", "rom_dense")]
    for name in rom:
        if name not in dense_names:
            raise BoardError(f"Layer {name!r} is not a dense layer of model "
                             f"{model.name!r} (dense layers: {', '.join(dense_names)})")
    constant_dense, constant_stage = ENGINES["dense"], ENGINES["output_stage"]

    def dense(layer, backend):
        if layer.name in backend.rom_reuse_factors:
            return DenseRomEngine(layer.spec,
                                  reuse_factor=backend.rom_reuse_factors[layer.name],
                                  clock_mhz=clock_mhz, family=family)
        return constant_dense(layer, backend)

    def output_stage(layer, backend):
        # A TFLite requantizer behind a ROM layer takes that layer's pace: as few lanes as
        # its interval allows, each chunk read from the ROM layer's held output vector.
        source = layer.inputs[0]
        if source not in backend.rom_reuse_factors:
            return constant_stage(layer, backend)
        lanes = layer.shape[-1]
        return OutputStageEngine(layer.stage, lanes=lanes, in_width=layer.fin.width,
                                 reuse_factor=min(lanes, backend.rom_reuse_factors[source]),
                                 hold_input=True)

    return Backend("weights in ROM", {**ENGINES, "dense": dense, "output_stage": output_stage},
                   multiplier_threshold=multiplier_threshold, rom_reuse_factors=rom)
