"""lossweight: a client of lossweightd, the multi-task loss weighting daemon.

    from lossweight import Client
    lw = Client("http://127.0.0.1:7070")
    lw.create_job("run-7", tasks=["ctr", "cvr"], method="dwa", world_size=4)
    d = lw.report("run-7", step=0, losses=[0.41, 2.9], rank=2, epoch=0)
    d.weights  # the same on every rank

The client is the standard library only. PyTorch helpers (gradient norms,
Gram matrices, a Weighter that does a whole step) live in lossweight.torch,
which imports torch; import it only where torch is installed.
"""
from .client import (
    BadRequest,
    BarrierTimeout,
    Client,
    Conflict,
    ConnectionFailed,
    Decision,
    Forbidden,
    Gone,
    LossweightError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "BarrierTimeout",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Decision",
    "Forbidden",
    "Gone",
    "LossweightError",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
]
