"""`animalcnn export`: a run's best model as SavedModel, TFLite (LiteRT) or ONNX, with
Keras's own export, then loaded back with that format's runtime and compared with
`model.keras` on a few of the run's images. The artifact takes raw 0-255 RGB pixels,
as `model.keras` does.

An existing target is replaced only when this command wrote it: a SavedModel folder
holding our marker file, or a TFLite/ONNX file whose SHA-256 matches the marker file
written beside it (`.<name>.animalcnn-export`), so a file of the same format from
anywhere else is not ours. Anything else is refused, and the run folder, its parents
and `/` are never targets.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from animalcnn.atomic import atomic_write
from animalcnn.data.decoding import try_load
from animalcnn.data.discovery import training_folder
from animalcnn.data.files import file_digest, list_images
from animalcnn.errors import DataError, UserError, gist
from animalcnn.evaluation.evaluate import warn_unfinished
from animalcnn.models import for_export
from animalcnn.run_folder import RunFolder

# format: (Keras's name for it, file suffix; a SavedModel is a folder)
FORMATS = {
    "savedmodel": ("tf_saved_model", ""),
    "tflite": ("litert", ".tflite"),
    "onnx": ("onnx", ".onnx"),
}
EXPORT_DIR = "export"
PARITY_TOLERANCE = 1e-3  # the largest difference in a probability that passes
SAMPLES = 8  # images compared
# A SavedModel folder written by this command holds this file, and an exported file has
# one beside it (`.<name>` + MARKER) holding its SHA-256; only those are ever replaced.
MARKER = ".animalcnn-export"
MARKER_TEXT = "written by animalcnn export"


def sample_images(run: RunFolder, n: int = SAMPLES) -> np.ndarray:
    """Up to `n` readable images of the run's data (test split first), at its size."""
    cfg = run.config().data
    folders = [cfg.dir / cfg.test_split, training_folder(cfg)]
    files = [f for folder in folders if folder.is_dir() for f in list_images(folder)]
    images = [
        a for a in (try_load(f, cfg.img_size) for f in files[: 4 * n]) if not isinstance(a, str)
    ]
    if not images:
        raise DataError(f"{cfg.dir}: no readable images of the run's data to compare with")
    return np.stack(images[:n]).astype(np.float32)


def predict_with(fmt: str, path: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities from the artifact, run by its own runtime."""
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # held: its variables live as long as it
        return loaded.serve(tf.constant(images)).numpy()
    if fmt == "tflite":
        import tensorflow as tf

        from animalcnn.console import native_stderr_held

        # tf.lite's interpreter warns that it is moving, and its C++ says which delegate
        # it made ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
        with warnings.catch_warnings(), native_stderr_held():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_path=str(path))
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, images.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(index, images)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    try:
        import onnxruntime
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install 'animalcnn[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _sidecar(target: Path) -> Path:
    return target.with_name(f".{target.name}{MARKER}")


def _is_ours(target: Path, fmt: str) -> bool:
    """Whether `target`, which exists, is an artifact of format `fmt` this command wrote
    (and so may be replaced)."""
    if target.is_symlink():
        return False
    if fmt == "savedmodel":
        marker = target / MARKER
        return marker.is_file() and marker.read_text(errors="replace").startswith(MARKER_TEXT)
    sidecar = _sidecar(target)
    if not (target.is_file() and sidecar.is_file()):
        return False
    return sidecar.read_text(errors="replace").strip() == file_digest(target)


def check_target(run: RunFolder, target: Path, fmt: str) -> None:
    """Refuse a target that is not ours to replace, in one line, before anything is built."""
    resolved = target.expanduser().resolve()
    run_dir = run.path.resolve()
    if resolved == run_dir or resolved in run_dir.parents or resolved == Path(resolved.anchor):
        raise UserError(
            f"--out {target}: the run folder, a folder above it or / is never "
            "an export target; name a new path"
        )
    if not target.exists() and not target.is_symlink():
        return
    if not _is_ours(target, fmt):
        what = "a folder" if target.is_dir() else "a file"
        raise UserError(
            f"--out {target}: {what} that is not a {fmt} export of animalcnn's; "
            "it is left as it is (name a new path, or remove it yourself)"
        )


def export(run: RunFolder, fmt: str, out: Path | None = None) -> tuple[Path, float]:
    """Write the artifact (default `<run>/export/model<suffix>`) and return it with the
    largest difference between its probabilities and `model.keras`'s, as exported:
    in float32 and without its augmentation layers (`models.for_export`)."""
    keras_format, suffix = FORMATS[fmt]
    target = out if out is not None else run.file(EXPORT_DIR) / f"model{suffix or '_savedmodel'}"
    check_target(run, target, fmt)
    warn_unfinished(run, "exporting")
    model = for_export(run.best_model())
    images = sample_images(run)
    reference = model.predict(images, verbose=0)
    model(images[:1])  # called once directly: ONNX export requires it (predict is not, on JAX)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:  # written beside the target, then renamed: never half an artifact
        tmp = scratch / f"model{suffix}"
        with warnings.catch_warnings():  # the converters' own notices (deprecations, tracing)
            warnings.simplefilter("ignore")
            model.export(str(tmp), format=keras_format, verbose=False)
        if fmt == "onnx" and keras.backend.backend() == "jax":
            pools_over_spatial_axes(tmp)
        if fmt == "savedmodel":
            (tmp / MARKER).write_text(f"{MARKER_TEXT} from {run.path}\n")
        else:
            digest = file_digest(tmp)
        _replace(tmp, target, fmt)
        if fmt != "savedmodel":
            atomic_write(_sidecar(target), digest + "\n")
    except Exception as exc:
        raise _export_error(exc, fmt, target) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        probs = predict_with(fmt, target, images)
    except UserError:
        raise
    except Exception as exc:  # the runtime refuses what the converter wrote
        gist = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{target}: written, but {fmt}'s runtime cannot run it ({gist})") from None
    return target, float(np.abs(np.asarray(probs, np.float64) - reference).max())


def _export_error(exc: Exception, fmt: str, target: Path) -> UserError:
    """Why an export failed, in one line: a converter that is not installed, a full disk
    (TensorFlow raises its own kinds for it), or what the converter refused."""
    if isinstance(exc, ModuleNotFoundError):
        if exc.name == "tensorflow":  # (JAX exports through jax2tf)
            return UserError(
                f"{fmt}: on {keras.backend.backend()}, Keras's export needs "
                "TensorFlow, which is not installed here"
            )
        extra = "onnx-jax" if exc.name == "jax2onnx" else "export"
        return UserError(f"{fmt}: {exc.name} is not installed: pip install 'animalcnn[{extra}]'")
    if _disk_full(exc):
        free = shutil.disk_usage(target.parent).free
        return UserError(
            f"{target.parent}: disk full while writing the {fmt} export "
            f"({free / 2**20:,.1f} MiB free); nothing was left behind"
        )
    return UserError(
        f"{fmt}: this model cannot be exported on {keras.backend.backend()} ({gist(exc)}); "
        "model.keras loads on every backend: export it on TensorFlow"
    )


POOLS = ("MaxPool", "AveragePool")


def pools_over_spatial_axes(path: Path) -> int:
    """Rewrite the pools that jax2onnx writes over all four axes of an NHWC tensor
    (`Unsqueeze`, `Unsqueeze`, a pool with kernel `[1, kh, kw, 1]`, `Squeeze`), which
    onnxruntime refuses ("Unsupported pooling size"), as the same pool over the two
    spatial axes of the NCHW tensor (`Transpose`, pool `[kh, kw]`, `Transpose`), and
    writes the model as one file. The parity check that follows proves the rewrite.
    Returns how many pools it rewrote."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    beside = {  # the weight files jax2onnx may have written beside the model
        path.parent / entry.value
        for tensor in model.graph.initializer
        if uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }
    load_external_data_for_model(model, str(path.parent))
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    users: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            users.setdefault(name, []).append(n)
    drop: set[int] = set()
    swap: dict[int, list] = {}
    for n in nodes:
        chain = _squeezed_pool(n, producer, users)
        if chain is not None:
            outer, inner, squeeze = chain
            swap[id(n)] = _spatial_pool(n, outer.input[0], squeeze.output[0])
            drop.update((id(inner), id(outer), id(squeeze)))
    rewritten = [m for n in nodes if id(n) not in drop for m in swap.get(id(n), [n])]
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    used = {name for n in rewritten for name in n.input}
    unused = [i for i in model.graph.initializer if i.name not in used]  # the axes constants
    for initializer in unused:
        model.graph.initializer.remove(initializer)
    onnx.checker.check_model(model)
    onnx.save(model, str(path), save_as_external_data=False)  # one file, weights inside
    for weights in beside:  # only the files the model named, in its own folder
        if weights.resolve().parent == path.parent.resolve() and weights != path:
            weights.unlink(missing_ok=True)
    return len(swap)


def _squeezed_pool(node: Any, producer: dict, users: dict) -> tuple[Any, Any, Any] | None:
    """(Unsqueeze, Unsqueeze, Squeeze) around `node` when it is a pool over all four axes
    that only they feed and read, else None."""
    from onnx import helper

    kernel = next(
        (helper.get_attribute_value(a) for a in node.attribute if a.name == "kernel_shape"), []
    )
    inner = producer.get(node.input[0])
    outer = producer.get(inner.input[0]) if inner is not None else None
    after = users.get(node.output[0], [])
    chain = [outer, inner, node, *after]
    if not (
        node.op_type in POOLS
        and len(kernel) == 4
        and kernel[0] == kernel[3] == 1
        and None not in chain
        and len(after) == 1
        and [c.op_type for c in chain] == ["Unsqueeze", "Unsqueeze", node.op_type, "Squeeze"]
        and len(users[inner.output[0]]) == len(users[outer.output[0]]) == 1
    ):
        return None
    return outer, inner, after[0]


def _spatial_pool(node: Any, source: str, result: str) -> list:
    """`node`'s pool over the two spatial axes of the NCHW tensor, between transposes."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    tag = node.name or node.output[0]
    spatial = {k: v[1:3] for k, v in attrs.items() if k in ("kernel_shape", "strides", "dilations")}
    if "pads" in attrs:  # [begin x4, end x4] -> the spatial axes' [begins, ends]
        spatial["pads"] = [*attrs["pads"][1:3], *attrs["pads"][5:7]]
    rest = {k: v for k, v in attrs.items() if k not in (*spatial, "pads", "kernel_shape")}
    return [
        helper.make_node("Transpose", [source], [f"{tag}_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(node.op_type, [f"{tag}_nchw"], [f"{tag}_pooled"], **spatial, **rest),
        helper.make_node("Transpose", [f"{tag}_pooled"], [result], perm=[0, 2, 3, 1]),
    ]


def _replace(new: Path, target: Path, fmt: str) -> None:
    """Put `new` at `target`; an old artifact of ours there is moved aside first and
    removed only once the new one is in place."""
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return
    if not _is_ours(target, fmt):  # (it may have changed since the first check)
        raise UserError(f"--out {target}: changed while exporting; it is left as it is")
    old = new.parent / "old"
    os.replace(target, old)
    os.replace(new, target)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc)
    return "No space left on device" in text or type(exc).__name__ == "ResourceExhaustedError"
