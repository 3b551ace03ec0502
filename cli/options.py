"""Parameter types of the command line's options that click does not have."""

import click

__all__ = ["Probability", "ReuseFactorType"]


class Probability(click.FloatRange):
    """A chance per cycle: 0 <= p < 1, and not NaN."""

    def __init__(self):
        super().__init__(0, 1, max_open=True)

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number in the range 0<=x<1.", param, ctx)
        return number


class ReuseFactorType(click.ParamType):
    """``--reuse-factor``: one reuse factor ``R`` (an integer from 1) for every layer, or
    ``NAME=R`` pairs separated by commas, one per layer named. Converts to an int or a dict
    of layer name to int."""

    name = "R|NAME=R,..."
    _ACCEPTED = ("an integer from 1, or NAME=R pairs separated by commas (e.g. "
                 "dense_1=4,dense_2=8)")

    def _integer(self, text, what, param, ctx):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1:
            self.fail(f"{what} is {text!r}; a reuse factor must be {self._ACCEPTED}", param,
                      ctx)
        return value

    def convert(self, value, param, ctx):
        if isinstance(value, (int, dict)) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if "=" not in text:
            return self._integer(text, "it", param, ctx)
        per_layer = {}
        for pair in text.split(","):
            name, equals, number = (part.strip() for part in pair.partition("="))
            if not name or not equals:
                self.fail(f"{pair.strip()!r} is not NAME=R; a reuse factor must be "
                          f"{self._ACCEPTED}", param, ctx)
            if name in per_layer:
                self.fail(f"layer {name!r} is given twice", param, ctx)
            per_layer[name] = self._integer(number, f"the reuse factor of {name!r}", param,
                                            ctx)
        return per_layer
