"""OpNames: the aten operators that run inside the block, by name, in order (tests/engine is on the path)."""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


class OpNames(TorchDispatchMode):
    """``with OpNames() as ops: ...`` then ``ops.names``: every aten operator dispatched in the block."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:  # noqa: D105
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))
