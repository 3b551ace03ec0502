"""TFLite's reference kernels as the reference of the TFLite tests and benches.

``ai-edge-litert``'s interpreter with ``OpResolverType.BUILTIN_REF`` runs the kernels TFLite
Micro runs (the default resolver applies XNNPACK, which rounds convolutions differently), with
``experimental_preserve_all_tensors=True`` so that every intermediate tensor can be read.
"""

import numpy as np

__all__ = ["reference_tensors"]


def reference_tensors(path, inputs, tensors):
    """The reference kernels' value of each tensor index in ``tensors`` for every input.

    Parameters
    ----------
    path : str or Path
        An int8 ``.tflite`` file of one input.
    inputs : ndarray, shape (batch, *input shape without its batch axis)
        Codes in the input tensor's dtype.
    tensors : iterable of int
        Tensor indices of the model.

    Returns
    -------
    dict of int to ndarray of int64, shape (batch, *tensor shape without its batch axis)

    Raises
    ------
    ImportError
        Without ``ai-edge-litert`` (the test extra).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out = {t: [] for t in tensors}
    for k in range(len(inputs)):
        interpreter.set_tensor(index, inputs[k:k + 1])
        interpreter.invoke()
        for t in out:
            out[t].append(interpreter.get_tensor(t)[0].astype(np.int64))
    return {t: np.array(v) for t, v in out.items()}
