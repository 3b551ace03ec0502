"""nnfab: quantized neural networks to bit-exact FPGA hardware."""

__version__ = "0.1.0"
