"""The pass interface."""

__all__ = ["Pass", "run_passes", "feeds_previous"]


class Pass:
    """A model transformation. Subclasses implement :meth:`apply`."""

    def apply(self, model):
        """Return ``(new_model, changed)``; ``model`` itself is never modified."""
        raise NotImplementedError

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def run_passes(model, passes):
    """Apply ``passes`` in order; returns the final model and the names of the passes that
    changed it."""
    changed_by = []
    for p in passes:
        model, changed = p.apply(model)
        if changed:
            changed_by.append(type(p).__name__)
    return model, changed_by


def feeds_previous(layers, consumers, k):
    """Whether ``layers[k]`` reads only ``layers[k - 1]``, its only reader (so that the two can
    be one engine in a graph); ``consumers`` is the model's readers by tensor name
    (:meth:`nnfab.ir.Model.consumers`)."""
    return 0 < k < len(layers) and layers[k].inputs == (layers[k - 1].name,) and \
        consumers[layers[k - 1].name] == [layers[k].name]
