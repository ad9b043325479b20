"""Reverse-mode autograd: the Function base class, grad modes, and the backward pass.

An op is a Function subclass with two static methods::

    forward(ctx, *arrays, **params) -> array
    backward(ctx, grad) -> one gradient array (or None) per input

``ctx`` is the graph node itself: it holds the input Tensors, whatever ``save_for_backward``
kept, and ``needs_input_grad`` so backward can skip gradients nobody asked for. Backward returns
gradients in the *output's* broadcast shape; ``unbroadcast`` folds them back to each input's
shape in this one place, so no op undoes broadcasting by itself.
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import backend

if TYPE_CHECKING:
    from .tensor import Tensor

REGISTRY: dict[str, type[Function]] = {}
"""Every op by name. The test suite requires a forward and a gradcheck case for each entry."""

_node_ids = itertools.count(1)
_new_object = object.__new__


class _Flags(threading.local):
    """Per thread, as in PyTorch: a no_grad block in one thread leaves the others recording."""

    grad_enabled = True
    anomaly = False
    retain_grads = False


FLAGS = _Flags()


class AnomalyError(RuntimeError):
    """Raised in anomaly mode by the first op whose forward or backward makes a NaN or Inf."""


# detect_anomaly scopes open in any thread: every op reads this plain global before the
# thread-local flag, which costs ~30 ns more per read (the per-op overhead budget is 3 us)
_anomaly_scopes = 0
_anomaly_lock = threading.Lock()


def _count_anomaly_scopes(change: int) -> None:
    global _anomaly_scopes
    with _anomaly_lock:
        _anomaly_scopes += change


class _FlagScope:
    """Sets FLAGS.<name> for a with-block, then restores it; reusable, and a decorator too."""

    def __init__(self, name: str, value: bool):
        self.name, self.value = name, value
        self._previous: list[bool] = []  # a stack: the same object may be entered again inside

    def __enter__(self) -> None:
        self._previous.append(getattr(FLAGS, self.name))
        setattr(FLAGS, self.name, self.value)

    def __exit__(self, *exc: Any) -> None:
        setattr(FLAGS, self.name, self._previous.pop())

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with type(self)(self.name, self.value):
                return func(*args, **kwargs)

        return run


class _AnomalyScope(_FlagScope):
    """detect_anomaly's scope: also counts the scopes open in all threads (_anomaly_scopes)."""

    def __enter__(self) -> None:
        super().__enter__()
        _count_anomaly_scopes(1)

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        _count_anomaly_scopes(-1)


def _flag(name: str, value: bool, func: Callable[..., Any] | None, scope_class: type[_FlagScope] = _FlagScope) -> Any:
    scope = scope_class(name, value)
    return scope if func is None else scope(func)


def no_grad(func: Callable[..., Any] | None = None) -> Any:
    """Run a block without recording a graph (evaluation, optimizer updates): ``with
    no_grad():``, or as a decorator, ``@no_grad`` or ``@no_grad()``."""
    return _flag("grad_enabled", False, func)


def enable_grad(func: Callable[..., Any] | None = None) -> Any:
    return _flag("grad_enabled", True, func)


def is_grad_enabled() -> bool:
    return FLAGS.grad_enabled


def detect_anomaly(func: Callable[..., Any] | None = None) -> Any:
    """Check every forward and backward result for NaN/Inf and name the op that made one."""
    return _flag("anomaly", True, func, _AnomalyScope)


def retain_grads(func: Callable[..., Any] | None = None) -> Any:
    """During this block, backward stores ``.grad`` on every node, not only on leaves.

    Graph dumps use it to show how much gradient reached each intermediate value."""
    return _flag("retain_grads", True, func)


def _describe(t: Tensor) -> str:
    return f"{t.name or 'unnamed'} (node {t.id}, shape {t.shape})"


def _check_finite(what: str, op: str, inputs: tuple[Tensor, ...], array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        shapes = ", ".join(str(t.shape) for t in inputs)
        nonfinite_in = [
            _describe(t) for t in inputs if t.data.dtype.kind == "f" and not np.isfinite(t.data).all()
        ]
        hint = f"; non-finite inputs: {', '.join(nonfinite_in)}" if nonfinite_in else ""
        raise AnomalyError(
            f"{what} of op '{op}' produced {bad} NaN/Inf value(s); input shapes: {shapes}{hint}"
        )


class Function:
    """Base class of every op; also the graph node (``ctx``) that backward walks."""

    op: ClassVar[str] = "function"
    # minigrad's own ops (set in ops.py) only call save_for_backward in forward, so when nothing
    # is recorded they can share one node that keeps nothing; a user's Function may store
    # anything on ctx and always gets a node of its own
    shares_unrecorded_node: ClassVar[bool] = False
    # which input's gradient reads each saved array (None: every backward reads it), e.g. (1, 0)
    # for a * b: b is read only for da, a only for db. The check for in-place updates skips an
    # array whose reader needs no gradient, as PyTorch does (it does not save such an array).
    # None for the whole tuple: every saved array is read. Not inherited, like the flag above.
    saved_reads: ClassVar[tuple[int | None, ...] | None] = None
    __slots__ = ("inputs", "saved", "needs_input_grad", "params")
    inputs: tuple[Tensor, ...]
    saved: tuple[Any, ...] | None  # None once backward has freed it
    needs_input_grad: list[bool] | tuple[()]
    params: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.shares_unrecorded_node = False  # not inherited: ops.py marks its own classes
        if "saved_reads" not in cls.__dict__:
            cls.saved_reads = None
        if "op" in cls.__dict__:
            REGISTRY[cls.op] = cls

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    @staticmethod
    def forward(ctx: Function, *arrays: np.ndarray, **params: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Function, grad: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        """Run forward on the inputs' arrays and, when gradients are on, record the node."""
        # the hot path of every op: kept to plain loops and attribute stores
        arrays = []
        needs = []
        first = None
        tensor = _TENSOR
        for t in inputs:
            if t.__class__ is not tensor and not isinstance(t, tensor):  # exact class: cheaper
                raise TypeError(
                    f"{cls.op}: expected Tensor inputs, got {type(t).__name__}; wrap arrays with "
                    "minigrad.Tensor(...)"
                )
            data = t.data
            if first is None:
                first = data.dtype
            elif data.dtype is not first and data.dtype != first:
                raise TypeError(
                    f"{cls.op}: mixed dtypes {first} and {data.dtype}; minigrad does not "
                    "promote, convert one operand with .float() or .double()"
                )
            arrays.append(data)
            needs.append(t.requires_grad)
        record = True in needs and FLAGS.grad_enabled
        own = cls.shares_unrecorded_node  # minigrad's own op (see ops.py), else a user's Function
        if record or not own:
            ctx = _new_object(cls)
            ctx.inputs = inputs
            ctx.saved = ()
            ctx.params = params
            ctx.needs_input_grad = needs if record else ()
        else:  # nothing to record: forward saves into a node that keeps nothing
            ctx = _UNRECORDED
        # a call with *arrays costs ~0.2 us more than one with the arguments spelled out (the
        # interpreter cannot inline it), so the usual arities are spelled out
        n = len(arrays)
        if params:
            out = cls.forward(ctx, *arrays, **params)
        elif n == 2:
            out = cls.forward(ctx, arrays[0], arrays[1])
        elif n == 1:
            out = cls.forward(ctx, arrays[0])
        else:
            out = cls.forward(ctx, *arrays)
        if not own:  # a user's Function: check what forward returned
            out = _checked_output(cls, out, first)
        if _anomaly_scopes and FLAGS.anomaly:  # the global first: a thread-local read costs more
            _check_finite("forward", cls.op, inputs, out)
        return _wrap(out, ctx if record else None)


class _Unrecorded(Function):
    """The ctx that forward gets when no graph is recorded: save_for_backward keeps nothing."""

    __slots__ = ()

    def save_for_backward(self, *arrays: Any) -> None:
        pass


_UNRECORDED = _Unrecorded()
_UNRECORDED.inputs, _UNRECORDED.saved, _UNRECORDED.params, _UNRECORDED.needs_input_grad = (), (), {}, ()


def _wrap(data: np.ndarray, ctx: Function | None) -> Tensor:
    """Make the output Tensor; bound to Tensor._from_op when tensor.py is imported."""
    raise RuntimeError("minigrad.tensor was not imported")


_TENSOR: Any = object  # the Tensor class, bound when tensor.py is imported


def bind_tensor_class(tensor_class: Any) -> None:
    global _wrap, _TENSOR
    _wrap = tensor_class._from_op
    _TENSOR = tensor_class


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the axes that broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return backend.current().reduce("sum", grad, axes, keepdims=False).reshape(shape)


def topological_order(root: Tensor, grad_only: bool = False) -> list[Tensor]:
    """Every node that leads to root, inputs before outputs; with grad_only, only the nodes
    that require grad (what backward walks). Iterative depth-first search, first input first,
    so deep graphs never hit the recursion limit and the order is deterministic."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        if node._ctx is not None:
            for parent in reversed(node._ctx.inputs):
                if (parent.requires_grad or not grad_only) and parent.id not in seen:
                    stack.append((parent, False))
    return order


def _backward_order(root: Tensor) -> list[Tensor]:
    """The nodes that require grad and lead to root, each before its inputs. Ids count up as
    tensors are made, so an op's output has a larger id than any of its inputs, and descending id
    order is a reverse topological order with no depth-first bookkeeping. A tensor can still
    carry an id from elsewhere (unpickled, or set by hand): then the depth-first order is used."""
    nodes = {root.id: root}
    stack = [root]
    while stack:
        node = stack.pop()
        fn = node._ctx
        if fn is not None:
            for parent in fn.inputs:
                if parent.requires_grad and parent.id not in nodes:
                    if parent.id >= node.id:
                        return list(reversed(topological_order(root, grad_only=True)))
                    nodes[parent.id] = parent
                    stack.append(parent)
    return [nodes[i] for i in sorted(nodes, reverse=True)]


# In-place updates that minigrad makes to tensors' arrays (optimizer steps, Module.load_state_dict):
# id of the array -> (a weak reference to it, the node-id counter at the update, who made it).
# Backward refuses a node recorded before such an update whose saved arrays overlap the updated
# one: PyTorch's version-counter check, for the updates minigrad makes. (A user's own writes into
# .data are not seen, as in PyTorch.) Node ids only grow, so "recorded before" is one comparison.
_updated: dict[int, tuple[weakref.ReferenceType[np.ndarray], int, str]] = {}
_last_update = 0  # the stamp of the latest update: nodes with a larger id need no check
_update_lock = threading.Lock()


def mark_updated(arrays: Iterable[np.ndarray], by: str) -> None:
    """Record that `by` (e.g. 'Adam.step()') has just changed these arrays in place."""
    global _last_update
    # one at a time: two threads stepping at once could otherwise store their stamps in the
    # wrong order, and an earlier stamp in _last_update hides the later update from backward
    with _update_lock:
        stamp = _last_update = next_id()
        for a in arrays:
            key = id(a)
            entry = _updated.get(key)
            ref = entry[0] if entry is not None and entry[0]() is a else weakref.ref(a, _forget(key))
            _updated[key] = (ref, stamp, by)


def _forget(key: int) -> Callable[[Any], None]:
    """The callback that drops an array's entry from _updated when the array is freed."""

    def drop(_ref: Any) -> None:
        _updated.pop(key, None)

    return drop


def _check_not_updated(node: Tensor, fn: Function) -> None:
    """Raise if an array that node's op saved was changed in place after the node was made."""
    reads, need = fn.saved_reads, fn.needs_input_grad
    arrays = []  # the saved arrays that this backward reads
    for k, saved in enumerate(fn.saved or ()):
        reader = reads[k] if reads is not None and k < len(reads) else None
        if isinstance(saved, np.ndarray) and (reader is None or reader >= len(need) or need[reader]):
            arrays.append(saved)
    if not arrays:
        return
    for ref, stamp, by in list(_updated.values()):
        array = ref()
        if array is None or stamp < node.id:
            continue
        for saved in arrays:
            if np.may_share_memory(saved, array):
                raise RuntimeError(
                    f"backward through op '{fn.op}' of {_describe(node)}: a {array.shape} array it "
                    f"saved for backward was changed in place by {by} after the graph was recorded, so the "
                    "gradient would use the new values. Run the forward pass again after the "
                    "update, or call backward before it."
                )


def run_backward(root: Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    """Propagate `grad` from root to every leaf that requires grad, accumulating into ``.grad``."""
    be = backend.current()
    grads: dict[int, np.ndarray] = {root.id: grad}
    # ids of nodes whose pending gradient is a fresh array that nothing else holds: a leaf can
    # keep it as .grad without a copy. Pass-through gradients (add returns g to both inputs),
    # views, and the caller's own array are copied instead.
    owned: set[int] = set()
    anomaly, retain_all = FLAGS.anomaly, FLAGS.retain_grads  # flags do not change mid-backward
    if anomaly and not np.isfinite(grad).all():
        raise AnomalyError(f"the gradient given to backward() of {_describe(root)} holds NaN/Inf")
    pop, pending = grads.pop, grads.get  # the loop below runs once per node: kept to plain steps
    for node in _backward_order(root):
        g = pop(node.id, None)
        if g is None:
            continue
        fn = node._ctx
        if fn is None or retain_all or node._retains_grad:  # keep it: accumulate, like PyTorch
            if node.grad is None:
                node.grad = _wrap(g if node.id in owned else np.array(g, order="C"), None)
            else:
                node.grad = _wrap(be.binary("add", _grad_array(node), g), None)
                if anomaly and not np.isfinite(node.grad.data).all():
                    raise AnomalyError(f"adding a gradient to the .grad of {_describe(node)} made NaN/Inf "
                                       "(the sum overflowed)")  # fmt: skip
            if fn is None:
                continue
        if fn.saved is None:
            raise RuntimeError(
                f"backward through op '{fn.op}' a second time: its saved values were freed by "
                "the first backward. Pass retain_graph=True to the first backward() to call it "
                "again on the same graph."
            )
        if node.id < _last_update:  # something changed in place since this node was recorded
            _check_not_updated(node, fn)
        input_grads = fn.backward(fn, g)
        if not isinstance(input_grads, tuple):  # a namedtuple counts as a tuple
            input_grads = (input_grads,)
        if not fn.shares_unrecorded_node:  # a user's Function: check what it returned
            input_grads = _checked_grads(fn, input_grads)
        handed_out: set[int] = set()  # ids of the arrays already given to an input of this node
        for parent, pg in zip(fn.inputs, input_grads):
            if pg is None or not parent.requires_grad:
                continue
            if anomaly:
                _check_finite("backward", fn.op, fn.inputs, pg)
            shape = parent.data.shape
            if pg.shape != shape:
                pg = unbroadcast(pg, shape)
            pid = parent.id
            previous = pending(pid)
            if previous is None:
                grads[pid] = pg
                if pg is not g and pg.base is None and id(pg) not in handed_out and pg.flags.c_contiguous:
                    owned.add(pid)
                else:
                    owned.discard(pid)
            else:
                grads[pid] = be.binary("add", previous, pg)
                owned.add(pid)
                if anomaly and not np.isfinite(grads[pid]).all():
                    raise AnomalyError(f"adding up the gradients of {_describe(parent)} made NaN/Inf "
                                       "(the sum overflowed)")  # fmt: skip
            handed_out.add(id(pg))
        if not retain_graph:
            fn.saved = None


def _user_array(value: Any, what: str) -> np.ndarray:
    """What a user's Function returned as a numeric numpy array (a Tensor gives its data)."""
    if isinstance(value, _TENSOR):
        value = value.data
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        kind = f"{type(value).__name__}{' of ' + str(value.dtype) if isinstance(value, np.ndarray) else ''}"
        raise TypeError(f"{what} a {kind}; return numpy arrays of numbers")
    return value


def _checked_output(cls: type[Function], out: Any, dtype: np.dtype | None) -> np.ndarray:
    """A user Function's forward result as a float array of its inputs' dtype."""
    out = _user_array(out, f"{cls.__name__}.forward returned")
    floats = (np.float32, np.float64)
    want = dtype if dtype is not None else (out.dtype if out.dtype in floats else np.dtype(np.float32))
    return out if out.dtype == want else out.astype(want)


def _grad_array(node: Tensor) -> np.ndarray:
    """The array of a .grad that backward adds to, checked: users may have assigned it."""
    cur = node.grad
    data = cur.data if isinstance(cur, _TENSOR) else None
    if not isinstance(data, np.ndarray) or data.shape != node.data.shape or data.dtype != node.data.dtype:
        what = f"{data.shape} {data.dtype} Tensor" if isinstance(data, np.ndarray) else type(cur).__name__
        raise TypeError(f"the .grad of {_describe(node)} is a {what}; backward adds to a Tensor of the "
                        f"tensor's shape and dtype {node.data.dtype} (set .grad = None to start afresh)")  # fmt: skip
    return data


def _checked_grads(fn: Function, grads: tuple[Any, ...]) -> tuple[Any, ...]:
    """A user Function's backward result: one gradient (or None) per input, arrays that
    broadcast to the input's shape, in the input's dtype (cast like PyTorch)."""
    op, inputs = type(fn).__name__, fn.inputs
    if len(grads) != len(inputs):
        raise TypeError(f"{op}.backward returned {len(grads)} gradient(s) for {len(inputs)} input(s); "
                        "return one per input (None for an input without one)")  # fmt: skip
    out = []
    for i, (t, pg) in enumerate(zip(inputs, grads)):
        if pg is not None:
            pg = _user_array(pg, f"{op}.backward: gradient {i} is")
            if pg.dtype != t.data.dtype:
                pg = pg.astype(t.data.dtype)
            try:  # unbroadcast sums it back to the input's shape: it must broadcast to itself
                ok = np.broadcast_shapes(pg.shape, t.data.shape) == pg.shape
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{op}.backward: gradient {i} has shape {pg.shape}, input {i} has shape {t.data.shape}")
        out.append(pg)
    return tuple(out)


next_id = _node_ids.__next__  # stable, increasing node ids
