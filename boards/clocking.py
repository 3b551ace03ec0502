"""Clock generation for board tops: PLL parameters computed from the requested frequency.

Amaranth has no generic PLL; these instantiate the vendor primitives (``SB_PLL40_PAD`` on
iCE40, ``EHXPLLL`` on ECP5) with parameters found by exhaustive search over the dividers,
within the data-sheet ranges that icepll and ecppll (Project IceStorm / Trellis) use.
"""

from dataclasses import dataclass

from nnfab.errors import BoardError

__all__ = ["PllParameters", "ice40_pll", "ecp5_pll"]


@dataclass(frozen=True)
class PllParameters:
    """Dividers of a PLL and the frequency they give.

    Attributes
    ----------
    params : dict
        The primitive's parameters (Verilog names).
    attrs : dict
        Attributes for nextpnr (ECP5 analog settings), possibly empty.
    f_out_mhz : float
        Achieved output frequency.
    """

    params: dict
    attrs: dict
    f_out_mhz: float


def _check(f_in_mhz, f_out_mhz, low, high, family):
    if not (low <= f_out_mhz <= high):
        raise BoardError(f"Clock {f_out_mhz!r} MHz is out of the {family} PLL's range "
                         f"({low} to {high} MHz)")


def ice40_pll(f_in_mhz, f_out_mhz):
    """``SB_PLL40_PAD``/``SB_PLL40_CORE`` parameters (simple feedback) for ``f_out_mhz``.

    PFD 10-133 MHz, VCO 533-1066 MHz, ``DIVR`` 0-15, ``DIVF`` 0-127, ``DIVQ`` 1-6.

    Raises
    ------
    BoardError
        If ``f_out_mhz`` is outside 16-275 MHz.
    """
    _check(f_in_mhz, f_out_mhz, 16, 275, "iCE40")
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f_out = f_vco / 2 ** divq
                if best is None or abs(f_out - f_out_mhz) < abs(best[0] - f_out_mhz):
                    best = (f_out, divr, divf, divq, f_pfd)
    f_out, divr, divf, divq, f_pfd = best
    filter_range = next(i + 1 for i, limit in enumerate((17, 26, 44, 66, 101, 1e9))
                        if f_pfd < limit)
    return PllParameters(
        params={"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
                "FILTER_RANGE": filter_range},
        attrs={}, f_out_mhz=f_out)


def ecp5_pll(f_in_mhz, f_out_mhz):
    """``EHXPLLL`` parameters (feedback from CLKOP) for ``f_out_mhz``.

    PFD 3.125-400 MHz, VCO 400-800 MHz, ``CLKI_DIV`` 1-128, ``CLKFB_DIV`` 1-80, ``CLKOP_DIV``
    1-128.

    Raises
    ------
    BoardError
        If ``f_out_mhz`` is outside 3.125-400 MHz.
    """
    _check(f_in_mhz, f_out_mhz, 3.125, 400, "ECP5")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if not 3.125 <= f_pfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if 400 <= f_vco <= 800:
                    if best is None or abs(f_out - f_out_mhz) < abs(best[0] - f_out_mhz):
                        best = (f_out, clki_div, clkfb_div, clkop_div)
                    break
    f_out, clki_div, clkfb_div, clkop_div = best
    return PllParameters(
        params={"PLLRST_ENA": "DISABLED", "INTFB_WAKE": "DISABLED",
                "STDBY_ENABLE": "DISABLED", "DPHASE_SOURCE": "DISABLED",
                "OUTDIVIDER_MUXA": "DIVA", "CLKOP_ENABLE": "ENABLED",
                "CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                "CLKOP_CPHASE": clkop_div - 1, "CLKOP_FPHASE": 0, "FEEDBK_PATH": "CLKOP"},
        attrs={"FREQUENCY_PIN_CLKI": f"{f_in_mhz:g}", "FREQUENCY_PIN_CLKOP": f"{f_out:g}",
               "ICP_CURRENT": "12", "LPF_RESISTOR": "8", "MFG_ENABLE_FILTEROPAMP": "1",
               "MFG_GMCREF_SEL": "2"},
        f_out_mhz=f_out)
