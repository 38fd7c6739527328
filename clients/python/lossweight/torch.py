"""PyTorch helpers for lossweightd: the trainer's share of a step.

    from lossweight.torch import Weighter, grad_norms, gram

Import this module only where torch is installed; `lossweight` itself never
imports torch.

grad_norms(losses, shared_params) and gram(losses, shared_params)
    The per-task gradients g_i of each loss on the shared parameters, the
    cheap way (DESIGN.md, "The trainer's share"): T torch.autograd.grad calls
    with retain_graph, one flattened T x d matrix J in the gradients' dtype,
    then the row norms, or G = J J^T as ONE matrix product, symmetrised.
    Returned as lists of Python floats, ready for Client.report. With the
    reference BLAS Debian's torch uses by default, G at T = 8, d = 1e6 takes
    about 33 ms; with OpenBLAS (libopenblas0, chosen with
    update-alternatives) about 8 ms.

Under DistributedDataParallel these are LOCAL: torch.autograd.grad does not
run DDP's all-reduce hooks (DDP averages gradients only during .backward()),
so each rank reports the norms / Gram of its own batch's gradients, and the
daemon averages the ranks' reports in rank order (start at 0.0, add the
ranks' values in increasing rank order, divide by the number of ranks). The
method therefore sees mean_r ||g_i^r|| and mean_r G^r, not the norms or Gram
of the rank-averaged gradient: getting those would need an all-reduce of the
whole T x d matrix J every step (T times DDP's own traffic). The e2e test
checks both facts on a two-rank gloo run.

Weighter(client, job, method, tasks, shared_params=...)
    One call per step does the rest:

        loss = weighter(step, losses, epoch=epoch)   # losses: T scalar tensors
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    It reads the method's inputs from GET /v1/methods once, computes and
    posts what the method needs (losses always; grad_norms and gram when the
    method needs them), waits for the step's decision (the same on every
    rank) and returns the scalar to back-propagate:

    * methods with output "loss_weights" (ew, uw, dwa, gradnorm, ...):
      sum_i w_i L_i.
    * methods with output "grad_coeffs" (mgda, pcgrad, upgrad, grad_unit,
      ...): a scalar whose backward leaves sum_i c_i g_i (the coefficients on
      the ORIGINAL per-task gradients) in the shared parameters' .grad, and
      each task's own unweighted gradient in its task-specific parameters
      (LibMTL's convention). It is sum_i L_i plus a term linear in the shared
      parameters, sum_p <p, sum_i c_i g_i - sum_i g_i> with the bracket a
      constant; its value is sum_i L_i. Because the combined gradient arrives
      through the ordinary backward, DDP averages it across ranks like every
      other gradient (giving sum_i c_i mean_r g_i^r, since c is the same on
      every rank), gradient accumulation and optimizer code stay as they are,
      and nothing must be done to .grad by hand. Writing into .grad directly
      would either be overwritten by DDP's all-reduce or skip it. The shared
      gradient equals sum_i c_i g_i up to float rounding of the order of the
      dtype's epsilon times ||sum_i g_i|| (the backward forms it as
      sum_i g_i + sum_i (c_i - 1) g_i). A loss scaler (AMP) scales both
      parts alike. `head_scale` scales what the heads get (DB-MTL as LibMTL
      runs it: see the Weighter's doc).

    Do not call loss.backward() more than once per step, and do not wrap the
    weighter call in torch.no_grad().

Checkpoints: weighter.state_dict() is the daemon's export of the job (GET
/v1/jobs/{job}/state) as of its last decided step; save it next to the
model's state_dict after the optimizer step (any one rank may call it).
Reports other ranks already posted for later steps are left out of it: the
resumed ranks post those steps again, from the restored model, and a kept
report resent with other numbers would be refused (409).
weighter.load_state_dict(doc) puts the job back (PUT .../state). Under
torch.distributed, call load_state_dict on every rank, as you load the model:
rank 0 restores and all ranks meet at a barrier, so no rank reports the next
step before the job is back where the checkpoint left it.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
import torch.distributed as dist

from .client import Client, Decision

__all__ = ["jacobian", "grad_norms", "gram", "Weighter"]

Tensor = torch.Tensor


def _param_list(params: Iterable[Tensor]) -> List[Tensor]:
    ps = [p for p in params if p.requires_grad]
    if not ps:
        raise ValueError("shared_params: no parameter that requires grad")
    return ps


def jacobian(losses: Sequence[Tensor], shared_params: Iterable[Tensor]) -> Tensor:
    """The T x d matrix J whose row i is the gradient of losses[i] on the
    shared parameters, flattened and concatenated in the order given
    (zeros where a loss does not reach a parameter). T autograd.grad calls,
    each with retain_graph=True so the caller can still back-propagate.
    Local under DDP (see the module doc)."""
    ps = _param_list(shared_params)
    dtype = ps[0].dtype
    for p in ps[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    d = sum(p.numel() for p in ps)
    J = torch.empty((len(losses), d), dtype=dtype, device=ps[0].device)
    for i, L in enumerate(losses):
        gs = torch.autograd.grad(L, ps, retain_graph=True, allow_unused=True)
        off = 0
        for p, g in zip(ps, gs):
            n = p.numel()
            if g is None:
                J[i, off:off + n].zero_()
            else:
                J[i, off:off + n].copy_(g.reshape(-1))
            off += n
    return J


def _norms_of(J: Tensor) -> List[float]:
    return [float(x) for x in torch.linalg.vector_norm(J, dim=1).tolist()]


def _gram_of(J: Tensor) -> List[List[float]]:
    G = J @ J.T  # one matrix product, never T^2 dot calls
    G = (G + G.T) * 0.5
    return [[float(x) for x in row] for row in G.tolist()]


def grad_norms(losses: Sequence[Tensor], shared_params: Iterable[Tensor]) -> List[float]:
    """||g_i|| of each task's loss on the shared parameters, as T floats.
    Local gradients under DDP: the daemon averages the ranks' reports."""
    return _norms_of(jacobian(losses, shared_params))


def gram(losses: Sequence[Tensor], shared_params: Iterable[Tensor]) -> List[List[float]]:
    """G_ij = <g_i, g_j> on the shared parameters, as a T x T list of floats
    (J J^T in the gradients' dtype, symmetrised). Local gradients under DDP:
    the daemon averages the ranks' reports."""
    return _gram_of(jacobian(losses, shared_params))


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized()


class Weighter:
    """Everything lossweight needs from a training step, in one call.

    client:        a lossweight.Client
    job:           the job id (the same on every rank of the run)
    method:        a method name from GET /v1/methods
    tasks:         task names (or task objects, see the job spec), in the
                   order the losses are given
    shared_params: the shared parameters (e.g. model.module.bottom.parameters()):
                   needed by methods that take grad_norms or gram and by every
                   "grad_coeffs" method, whose coefficients apply to them
    params:        the method's parameters (GET /v1/methods lists them)
    world_size, rank: default to torch.distributed's when it is initialised,
                   else 1 and 0
    norm_params:   for loss-weight methods that take grad_norms (gradnorm):
                   the parameters whose gradient norms are sent, e.g. the
                   last shared layer as in the GradNorm paper (default:
                   shared_params)
    create:        PUT the job spec (every rank may: the same spec again is
                   accepted); False when the job is made elsewhere
    head_scale:    "grad_coeffs" methods only: a function of the T loss values
                   giving T factors for the task-specific gradients (default:
                   none, each head gets its own task's unweighted gradient, as
                   METHODS.md and LibMTL's MGDA/PCGrad/... do). LibMTL's DB-MTL
                   gives head i the gradient of log(L_i + 1e-8): reproduce it
                   with head_scale=lambda L: [1 / (l + 1e-8) for l in L].
    **spec:        more job spec fields: seed, sync, barrier_timeout_ms,
                   min_ranks

    weighter(step, losses, epoch=None) posts this rank's report and returns
    the scalar to back-propagate (see the module doc for what it is);
    weighter.decision is the step's Decision (weights, ranks, ...), and
    weighter.last_report what this rank sent for it (step, epoch, losses,
    grad_norms, gram; None where not sent), for logging.
    """

    def __init__(self, client: Client, job: str, method: str, tasks: Sequence[Any],
                 shared_params: Optional[Iterable[Tensor]] = None,
                 params: Optional[Mapping[str, Any]] = None,
                 world_size: Optional[int] = None, rank: Optional[int] = None,
                 norm_params: Optional[Iterable[Tensor]] = None, create: bool = True,
                 head_scale: Optional[Callable[[List[float]], Sequence[float]]] = None,
                 **spec: Any):
        self.client = client
        self.job = job
        self.method = method
        self.tasks = list(tasks)
        self.T = len(self.tasks)
        on = _dist_on()
        self.world_size = int(world_size if world_size is not None
                              else (dist.get_world_size() if on else 1))
        self.rank = int(rank if rank is not None else (dist.get_rank() if on else 0))
        self.shared_params = _param_list(shared_params) if shared_params is not None else None
        self.norm_params = (_param_list(norm_params) if norm_params is not None
                            else self.shared_params)
        info = client.method(method)
        self.info = info
        self.inputs = set(info.get("inputs", []))
        self.optional_inputs = set(info.get("optional_inputs", []))
        self.output = info.get("output", "loss_weights")
        self.coeffs = self.output == "grad_coeffs"
        self.needs_gram = "gram" in self.inputs
        self.needs_norms = "grad_norms" in self.inputs
        if (self.coeffs or self.needs_gram or self.needs_norms) and self.shared_params is None:
            raise ValueError("method %r needs the shared parameters (shared_params=...)" % method)
        self.head_scale = head_scale
        self.decision: Optional[Decision] = None
        self.last_report: Optional[Dict[str, Any]] = None
        if create:
            client.create_job(job, self.tasks, method, params=dict(params) if params else None,
                              world_size=self.world_size, **spec)

    def _loss_list(self, losses: Union[Sequence[Tensor], Mapping[str, Tensor]]) -> List[Tensor]:
        if isinstance(losses, Mapping):
            names = [t["name"] if isinstance(t, Mapping) else t for t in self.tasks]
            losses = [losses[n] for n in names]
        ls = list(losses)
        if len(ls) != self.T:
            raise ValueError("%d losses for %d tasks" % (len(ls), self.T))
        return ls

    def __call__(self, step: int, losses: Union[Sequence[Tensor], Mapping[str, Tensor]],
                 epoch: Optional[int] = None, *, samples: Optional[float] = None,
                 losses_after: Optional[Sequence[Any]] = None) -> Tensor:
        ls = self._loss_list(losses)
        values = [float(L.detach()) for L in ls]
        J = None
        norms = G = None
        if self.coeffs or self.needs_gram:
            J = jacobian(ls, self.shared_params)
            if self.needs_gram:
                G = _gram_of(J)
            if self.needs_norms:
                norms = _norms_of(J)
        elif self.needs_norms:
            norms = _norms_of(jacobian(ls, self.norm_params))
        self.last_report = {"step": int(step), "epoch": epoch, "losses": values,
                            "grad_norms": norms, "gram": G}
        d = self.client.report(self.job, step, values, rank=self.rank, grad_norms=norms,
                               gram=G, epoch=epoch, samples=samples,
                               losses_after=losses_after)
        self.decision = d
        w = d.weights
        if w is None or len(w) != self.T:
            raise RuntimeError("step %d of job %s: no decision (%s)" % (step, self.job, d.status))
        if not self.coeffs:
            total = ls[0] * w[0]
            for i in range(1, self.T):
                total = total + ls[i] * w[i]
            return total
        # grad_coeffs: sum_i s_i L_i (s = 1 unless head_scale) gives every
        # head its own task's gradient; the linear term moves the shared
        # gradient from sum_i s_i g_i to sum_i c_i g_i. Its value is
        # cancelled, so the scalar reads sum_i s_i L_i.
        assert J is not None and self.shared_params is not None
        c = torch.tensor(w, dtype=J.dtype, device=J.device)
        sc = [1.0] * self.T
        if self.head_scale is not None:
            sc = [float(x) for x in self.head_scale(values)]
            if len(sc) != self.T:
                raise ValueError("head_scale gave %d factors for %d tasks" % (len(sc), self.T))
        delta = (c - torch.tensor(sc, dtype=J.dtype, device=J.device)) @ J
        total = ls[0] * sc[0] if sc[0] != 1.0 else ls[0]
        for i in range(1, self.T):
            total = total + (ls[i] * sc[i] if sc[i] != 1.0 else ls[i])
        lin = None
        off = 0
        for p in self.shared_params:
            n = p.numel()
            term = (p * delta[off:off + n].view_as(p).to(p.dtype)).sum()
            lin = term if lin is None else lin + term
            off += n
        return total + (lin - lin.detach())

    @property
    def weights(self) -> Optional[List[float]]:
        """The last decision's weights (None before the first step)."""
        return self.decision.weights if self.decision else None

    def state_dict(self) -> Dict[str, Any]:
        """The daemon's export of the job (GET /v1/jobs/{job}/state), to save
        next to the model's state_dict after step k's optimizer step. Any
        single rank may call it (it is not a collective).

        The checkpoint holds the job as of its last decided step: reports
        other ranks may already have posted for later steps (the export's
        position.open_steps) are left out and their rank_steps wound back,
        because the resumed ranks post those steps again from the restored
        model, and their numbers need not be the same bits as before (a
        differing resend of a kept report would be a 409)."""
        return self.client.export_state(self.job, decided_only=True)

    def load_state_dict(self, state: Dict[str, Any], barrier: bool = True) -> None:
        """Put the job back as `state` (from state_dict()) left it. Under
        torch.distributed call it on every rank: rank 0 restores, then every
        rank waits at a barrier (barrier=False: only the restore, on the
        ranks that call it)."""
        multi = _dist_on() and self.world_size > 1
        if not multi or self.rank == 0 or not barrier:
            self.client.restore_state(self.job, state)
        if multi and barrier:
            dist.barrier()
