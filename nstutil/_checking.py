"""The machinery behind :mod:`nstutil.checks`: calling a student's function safely and saying what is wrong.

A check's body raises :class:`Wrong` with the line to print; :func:`report` turns the outcome into one printed line
and True or False, whatever the student's function does.
"""

from __future__ import annotations

import copy
import inspect
import linecache
import re
import signal
import threading
import traceback
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import torch

__all__ = ["Wrong", "report", "not_done_line", "call", "explain", "seeded", "close", "tensor_result", "scalar", "compare",
           "gradients"]

PASSED, WRONG, NOT_DONE = "✔", "✘", "○"
# Seconds a student's function may take in one check (each of its calls). The checks' inputs are tiny: a function
# still running after this is stuck in a loop (or waiting for input), and the notebook must go on.
TIME_LIMIT = 60.0


class Wrong(Exception):
    """What is wrong with the answer, as the one line to print (without the check's name)."""


class _NotDone(Exception):
    """The student's function raised NotImplementedError: the exercise is not done yet."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def not_done_line(name: str) -> str:
    """The line a check prints while its exercise still raises NotImplementedError (also what the students'
    notebooks store as the check cell's expected output, see notebooks/make_exercises.py)."""
    return f"{NOT_DONE} {name}: not done yet (replace raise NotImplementedError() with your code)"


def report(name: str, body: Callable[[Callable], str], fn: Any) -> bool:
    """Run ``body(fn)``, print one line for the outcome, return whether it passed."""
    passed = False
    if not callable(fn):
        shown = type(fn).__name__ if isinstance(fn, torch.Tensor) else repr(fn)[:40]
        line = (f"{WRONG} {name}: got {shown}, not a function: pass the function itself (my_function, not "
                f"my_function(...))")
    else:
        try:
            line = f"{PASSED} {name}: passed ({body(fn)})"
            passed = True
        except _NotDone:
            line = not_done_line(name)
        except Wrong as wrong:
            line = f"{WRONG} {name}: {wrong}"
        except Exception as exc:  # an answer so unexpected that the check itself tripped: still one line
            line = f"{WRONG} {name}: could not be checked ({type(exc).__name__}: {_first_line(exc)})"
    print(" ".join(line.split()), flush=True)  # one line, whatever a message contains
    return passed


class _TooSlow(BaseException):
    """Raised in the student's function when the time limit is up (a BaseException: a bare ``except Exception``
    in the student's code must not swallow it)."""


_timer_armed = False


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`_TooSlow` (SIGALRM, so only in the main thread of a
    system that has it, as a Jupyter kernel's cells are; elsewhere there is no limit). Nested blocks share the
    outer one's limit."""
    global _timer_armed
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and not _timer_armed and seconds > 0)
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _TooSlow()

    previous = signal.signal(signal.SIGALRM, expire)
    _timer_armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _timer_armed = False


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, torch.nn.Module):
        # The student's function gets its own model: .double(), .to(...) or requires_grad_(True) on it must not
        # change the notebook's shared one (load_vgg19 hands out one model per weights).
        return copy.deepcopy(value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _unchanged(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return torch.equal(before.detach(), after.detach())
    if isinstance(before, list):
        return len(before) == len(after) and all(_unchanged(b, a) for b, a in zip(before, after))
    return True


def call(fn: Callable, args: Sequence[Any], *, hint: str, errors: Optional[Dict[str, str]] = None,
         protect: bool = True) -> Any:
    """``fn(*args)``; NotImplementedError means not done yet, any other exception or a changed input is Wrong.

    With ``protect`` the function gets copies (a model is always copied), which must be unchanged afterwards.
    ``errors`` maps text in an exception's message to a hint; ``hint`` says what the function must take, for
    wrong-argument TypeErrors. A call that runs longer than :data:`TIME_LIMIT` seconds is stopped and Wrong.
    """
    passed = [_copy(a) for a in args] if protect else [
        _copy(a) if isinstance(a, torch.nn.Module) else a for a in args]
    try:
        with _time_limit(TIME_LIMIT), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # PyTorch's own warnings (x.T on 3-D) become hints, not stderr noise
            result = fn(*passed)
    except _TooSlow:
        raise Wrong(f"did not return within {TIME_LIMIT:g} s on the check's small inputs, so it was stopped: look "
                    f"for a loop that never ends (or a call that waits for input)") from None
    except NotImplementedError:
        raise _NotDone from None
    except Exception as exc:
        message = f"raised {type(exc).__name__}: {_first_line(exc)}"
        known = explain(exc, fn, [str(w.message) for w in caught])
        if known:
            raise Wrong(known) from None
        if "in-place operation" in message:
            raise Wrong(f"{message}: it changes its input in place; use out-of-place operations (x - m, not "
                        f"x.sub_(m))") from None
        for text, advice in (errors or {}).items():
            if text in message:
                raise Wrong(f"{message}: {advice}") from None
        if isinstance(exc, TypeError) and "argument" in message:
            raise Wrong(f"{message}: {hint}") from None
        raise Wrong(message) from None
    if protect and not all(_unchanged(a, p) for a, p in zip(args, passed)):
        line = _in_place_line(fn)
        raise Wrong("changes its input in place" + (f" (`{line}`)" if line else "") + ": work on a copy or use "
                    "out-of-place operations (x - m, not x.sub_(m); x = x / n, not x /= n)")
    return result


def _student_line(exc: BaseException, fn: Callable) -> str:
    """The line of the student's own code where ``exc`` was raised (the innermost frame in fn's file), or ""."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.co_filename]
    if not frames:
        return ""
    return (frames[-1].line or linecache.getline(frames[-1].filename, frames[-1].lineno)).strip()


_IN_PLACE = re.compile(r"\.[a-z]\w*_\(|[\w\]\)]\s*[-+*/]=")


def _in_place_line(fn: Callable) -> str:
    """The first line of ``fn``'s source that changes a tensor in place (``x.div_(n)``, ``x /= n``), or ""."""
    try:
        lines = inspect.getsource(fn).splitlines()
    except (OSError, TypeError):
        return ""
    return next((line.strip() for line in lines if _IN_PLACE.search(line.split("#")[0])), "")


_MATMUL = ("batch2 tensor", "mat1 and mat2", "size mismatch", "shapes cannot be multiplied", "Expected size for first")


def explain(exc: BaseException, fn: Callable, warned: Sequence[str] = ()) -> str:
    """A sentence about the student's code for the commonest slips, from what ``fn`` raised; "" if none fits.

    PyTorch's own messages name the check's hidden tensors ("batch2 tensor ... [1, 35] but got: [1, 6]"), which a
    student cannot map to a line of theirs; this names the line and the fix instead."""
    text = str(exc)
    line = _student_line(exc, fn)
    where = f"`{line}` " if line else ""
    compact = line.replace(" ", "")
    if any("x.T" in w or ".T on tensors" in w or "mT" in w for w in warned) or re.search(r"\.T\b", line):
        if any(m in text for m in _MATMUL) or "must match the size" in text or isinstance(exc, RuntimeError):
            return (f"{where}uses .T on a 3-D tensor, which reverses all its dimensions (b×C×N becomes N×C×b): "
                    f"swap only the last two with .transpose(1, 2) (or .mT)")
    if any(m in text for m in _MATMUL):
        if "transpose(0,1)" in compact or ".t()" in compact:
            return (f"{where}swaps the wrong dimensions: on a b×C×N tensor swap the last two, .transpose(1, 2), "
                    f"so that F·Fᵀ is C×C")
        return (f"{where}multiplies two tensors whose sizes do not fit (the first one's last size must equal the "
                f"second one's next-to-last): for F·Fᵀ multiply F by its transpose, F @ F.transpose(1, 2), "
                f"not by F itself")
    if "numpy() on Tensor that requires grad" in text or "Can't call numpy()" in text:
        return (f"{where}leaves PyTorch for NumPy: gradients cannot flow through NumPy (the loss could not be "
                f"minimised); use the torch operation on the tensor itself (@ or torch.matmul, .mean(), .sum())")
    if "in-place operation" in text or "modified by an inplace operation" in text:
        at = line or _in_place_line(fn)
        return ((f"`{at}` " if at else "") + "changes a tensor in place, which breaks the gradient: use "
                "out-of-place operations (x - m, not x.sub_(m); x = x / n, not x /= n)")
    if "view size is not compatible" in text:
        return f"{where}uses .view on a transposed tensor: use .reshape(...) instead"
    if "Dimension out of range" in text:
        return (f"{where}names a dimension the tensor does not have: a feature map is b×C×H×W (dimensions 0 to "
                f"3, or -4 to -1); has an earlier line dropped the batch dimension?")
    if isinstance(exc, ValueError) and ("values to unpack" in text):
        return (f"{where}unpacks the shape into the wrong number of names: a feature map's shape is "
                f"(b, C, H, W), four numbers")
    return ""


def seeded(shape: Tuple[int, ...], seed: int) -> torch.Tensor:
    """A float32 tensor of ``shape`` with values in [0, 1) from ``seed`` (like ReLU activations or a picture)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to the size of ``b``'s values."""
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale + 1e-12)


def _not_a_tensor(got: Any) -> None:
    if got is None:
        raise Wrong("returns None: add a return statement")
    if isinstance(got, (bool, int, float)):
        raise Wrong(f"returns a Python {type(got).__name__}: return the tensor itself (no .item() or float()), so "
                    f"that gradients can flow")
    if type(got).__module__ == "numpy":
        raise Wrong("returns a NumPy value: stay with torch operations and return a tensor")
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"returns a {type(got).__name__}, not a tensor")


def tensor_result(got: Any, expected: torch.Tensor, shape_hints: Dict[Tuple[int, ...], str], *,
                  generic_shape_hint: str = "", dtype_hint: str = "") -> torch.Tensor:
    """``got`` if it is a tensor of ``expected``'s shape and dtype; otherwise Wrong, with the hint for its shape."""
    _not_a_tensor(got)
    if got.shape != expected.shape:
        advice = shape_hints.get(tuple(got.shape), generic_shape_hint)
        raise Wrong(f"returns shape {tuple(got.shape)}, not {tuple(expected.shape)}" + (f": {advice}" if advice
                                                                                       else ""))
    if got.dtype != expected.dtype:
        raise Wrong(f"returns {str(got.dtype).replace('torch.', '')}, not "
                    f"{str(expected.dtype).replace('torch.', '')}{dtype_hint}")
    return got


def scalar(got: Any, expected: torch.Tensor, *, reduce_hint: str) -> torch.Tensor:
    """``got`` as a 0-dim tensor if it is a tensor holding one number; otherwise Wrong."""
    _not_a_tensor(got)
    if got.numel() != 1:
        raise Wrong(f"returns a tensor of shape {tuple(got.shape)}, not one number: {reduce_hint}")
    return got.reshape(())


Mistake = Tuple[Callable[..., Any], str]


def compare(got: torch.Tensor, expected: torch.Tensor, where: str = "", *, mistakes: Iterable[Mistake] = (),
            inputs: Any = ()) -> None:
    """Wrong unless ``got`` equals ``expected``; names the mistake when ``got`` equals a known wrong answer.

    Each mistake is ``(wrong(*inputs), what is wrong)``; one that happens to give the right value on these inputs
    cannot be told apart and is skipped.
    """
    if close(got, expected):
        return
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    with torch.no_grad():
        for wrong, what in mistakes:
            try:
                value = wrong(*args)
            except Exception:  # a mistake that cannot even be made with these inputs
                continue
            if not close(value, expected) and close(got, value):
                raise Wrong(what)
    a, b = got.detach().double(), expected.detach().double()
    place = f" {where}" if where else ""
    ratio = ((a * b).sum() / (b * b).sum()).item() if (b * b).sum() > 0 else float("nan")
    if close(a, ratio * b):
        raise Wrong(f"off by a constant factor of {ratio:.4g}{place}: check the normalisation (what you divide by)")
    raise Wrong(f"values differ from nstutil's{place} (largest difference {(a - b).abs().max().item():.3g}, values "
                f"up to {b.abs().max().item():.3g}): compare your formula with the lesson's")


def gradients(fn: Callable, args: Sequence[Any], expected_fn: Callable) -> None:
    """Wrong unless the gradient of ``fn(*args)`` with respect to ``args[0]`` is the reference's."""
    weights = None
    grads = []
    for function in (fn, expected_fn):
        x = args[0].detach().clone().requires_grad_(True)
        rest = [_copy(a) for a in args[1:]]
        out = call(function, [x, *rest], hint="", protect=False)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise Wrong("no gradient flows back to the input: avoid .detach(), .item(), .numpy() and "
                        "torch.tensor(...) on the way")
        if weights is None:
            weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(99), dtype=out.dtype)
        (out * weights).sum().backward()
        if x.grad is None:
            raise Wrong("no gradient flows back to the input: avoid .detach(), .item(), .numpy() and "
                        "torch.tensor(...) on the way")
        grads.append(x.grad)
    if not close(grads[0], grads[1]):
        raise Wrong("the values are right but the gradient is not nstutil's: part of the computation is detached "
                    "(.detach(), .data, torch.tensor(...)) or not differentiable")
