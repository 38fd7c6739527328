"""One rank of the two-rank DDP run of tests/e2e/test_ddp.py.

    ddp_worker.py --phase full|resume --rank R --world 2 --init FILE
                  --url URL --out DIR --methods m1,m2,... --steps N --k K --j J

Phase "full" (the first launch), per method m:
  * job "<m>-full": N steps uninterrupted;
  * job "<m>-resume": the same run; rank 0 saves a checkpoint after step K
    (model + optimizer + weighter.state_dict()); both ranks go on to step
    K + J, then rank 0 alone reports step K + J + 1 (the other rank "crashed"
    before it), leaving an open step in the daemon. For the last method rank 0
    blocks on that report and the test SIGKILLs both processes there.
  It starts with two probes of the PyTorch helpers under DDP (probe-*.json).
Phase "resume" (a second launch, new processes), per method: load the
checkpoint, weighter.load_state_dict() (PUT state), train steps K+1..N-1.

Every rank writes <out>/<job>.rank<R>.jsonl: one line per step with what it
sent (weighter.last_report) and the decision it got, then {"eval": [...]}
(held-out losses). Nothing here judges; the test reads these files.
"""
import argparse
import copy
import datetime
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python", "examples"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import ddp_example as ex  # noqa: E402
from lossweight import Client  # noqa: E402
from lossweight.torch import Weighter, grad_norms, gram, jacobian  # noqa: E402

# Method -> params of the job. Learning rates of the learned weights are
# raised from the anchors' defaults so that a few hundred steps move them.
METHODS = {
    "ew": None,
    "uw": {"lr": 0.01},
    "gradnorm": {"lr": 0.01},
    "dwa": None,
    "power_mean": None,
    "mgda": None,
    "pcgrad": None,
}
BATCH = 64
D_IN = 16
STEPS_PER_EPOCH = 20


def teacher():
    g = torch.Generator().manual_seed(1234)
    a, b, c = (v / v.norm() for v in torch.randn(3, D_IN, generator=g))
    return a, b, c


def make_batch(x, abc):
    a, b, c = abc
    # Regression with losses in the tens at the start (variance ~27);
    # a binary classification below 1 (BCE ~0.69 at the start).
    y_reg = 5.0 * (x @ a) + ((x @ b) ** 2 - 1.0)
    y_cls = ((x @ c + 0.5 * (x @ a)) > 0).to(x.dtype)
    return x, y_reg, y_cls


def batches_for(rank, n):
    g = torch.Generator().manual_seed(1000 + rank)
    abc = teacher()
    return [make_batch(torch.randn(BATCH, D_IN, generator=g), abc) for _ in range(n)]


def held_out():
    g = torch.Generator().manual_seed(99)
    return make_batch(torch.randn(4096, D_IN, generator=g), teacher())


def evaluate(model):
    x, y_reg, y_cls = held_out()
    with torch.no_grad():
        out_reg, out_cls = model.module(x)
        return [float(F.mse_loss(out_reg, y_reg)),
                float(F.binary_cross_entropy_with_logits(out_cls, y_cls))]


class Log:
    def __init__(self, out, job, rank):
        self.f = open(os.path.join(out, "%s.rank%d.jsonl" % (job, rank)), "a")

    def step(self, weighter):
        d = weighter.decision
        self.f.write(json.dumps({"step": d.step, "sent": weighter.last_report,
                                 "weights": d.weights, "ranks": d.ranks,
                                 "status": d.status, "method": d.method}) + "\n")

    def eval(self, model):
        self.f.write(json.dumps({"eval": evaluate(model)}) + "\n")

    def close(self):
        self.f.close()


def flat_grads(params):
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                      for p in params])


def gather(t):
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return out


def probe_helpers(out, rank, batch):
    """grad_norms/gram under DDP are the LOCAL gradients' (no all-reduce)."""
    torch.manual_seed(0)
    model = DDP(ex.SharedBottom())
    ref = copy.deepcopy(model.module)  # the same parameters, no DDP
    x, y_reg, y_cls = batch
    out_reg, out_cls = model(x)
    losses = [F.mse_loss(out_reg, y_reg), F.binary_cross_entropy_with_logits(out_cls, y_cls)]
    shared = list(model.module.bottom.parameters())
    n_ddp = grad_norms(losses, shared)
    g_ddp = gram(losses, shared)
    untouched = all(p.grad is None for p in model.parameters())
    # The reference: each task's gradient by a plain backward on the copy.
    r_reg, r_cls = ref(x)
    rl = [F.mse_loss(r_reg, y_reg), F.binary_cross_entropy_with_logits(r_cls, y_cls)]
    rows = []
    for i, L in enumerate(rl):
        ref.zero_grad(set_to_none=True)
        L.backward(retain_graph=True)
        rows.append(flat_grads(list(ref.bottom.parameters())).double())
    J = torch.stack(rows)
    n_ref = J.norm(dim=1).tolist()
    G_ref = (J @ J.T).tolist()
    # What an all-reduced (averaged) gradient would have given instead.
    Jall = gather(J)
    Jmean = sum(Jall) / len(Jall)
    n_avg = Jmean.norm(dim=1).tolist()
    norms_all = [t.tolist() for t in gather(torch.tensor(n_ddp, dtype=torch.float64))]
    # finish the DDP iteration so the process group is left clean
    (losses[0] + losses[1]).backward()
    res = {"norms": n_ddp, "gram": g_ddp, "norms_ref": n_ref, "gram_ref": G_ref,
           "norms_of_averaged_gradient": n_avg, "norms_all_ranks": norms_all,
           ".grad_untouched": untouched}
    with open(os.path.join(out, "probe-helpers.rank%d.json" % rank), "w") as f:
        json.dump(res, f)


def probe_coeffs(url, out, rank, batch):
    """A grad_coeffs Weighter's backward under DDP: shared .grad is
    sum_i c_i mean_r g_i^r, each head's .grad its own task's mean gradient."""
    torch.manual_seed(0)
    model = DDP(ex.SharedBottom())
    shared = list(model.module.bottom.parameters())
    heads = [list(h.parameters()) for h in model.module.heads]
    w = Weighter(Client(url), "probe-mgda", "mgda", tasks=["reg", "cls"], shared_params=shared)
    x, y_reg, y_cls = batch
    out_reg, out_cls = model(x)
    losses = [F.mse_loss(out_reg, y_reg), F.binary_cross_entropy_with_logits(out_cls, y_cls)]
    J = jacobian(losses, shared).double()
    head_g = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        losses[i], heads[i], retain_graph=True)]).double() for i in range(2)]
    loss = w(0, losses)
    c = torch.tensor(w.decision.weights, dtype=torch.float64)
    Js = gather(J)
    want_shared = sum(c @ Jr for Jr in Js) / len(Js)
    want_heads = [sum(gather(h)) / dist.get_world_size() for h in head_g]
    model.zero_grad(set_to_none=True)
    loss.backward()
    got_shared = flat_grads(shared).double()
    got_heads = [flat_grads(h).double() for h in heads]
    rel = lambda a, b: float((a - b).norm() / max(float(b.norm()), 1e-30))  # noqa: E731
    res = {"weights": w.decision.weights,
           "loss_value": float(loss), "sum_losses": float(losses[0] + losses[1]),
           "shared_rel_err": rel(got_shared, want_shared),
           "shared_rel_err_vs_local": rel(got_shared, c @ J),
           "heads_rel_err": [rel(g, h) for g, h in zip(got_heads, want_heads)],
           "gram_sent": w.last_report["gram"], "gram_local": (J @ J.T).tolist()}
    with open(os.path.join(out, "probe-coeffs.rank%d.json" % rank), "w") as f:
        json.dump(res, f)


def pending_reported(client, job, step):
    for s in client.job(job).get("status", {}).get("open_steps", []):
        if s.get("step") == step and s.get("ranks", 0) >= 1:
            return True
    return False


def lone_report(weighter, model, step, batch, epoch, wait):
    """Rank 0's report of a step the other rank never reaches."""
    x, y_reg, y_cls = batch
    out_reg, out_cls = model(x)
    losses = [F.mse_loss(out_reg, y_reg), F.binary_cross_entropy_with_logits(out_cls, y_cls)]
    shared = weighter.shared_params
    kw = {}
    if weighter.needs_gram:
        kw["gram"] = gram(losses, shared)
    if weighter.needs_norms:
        kw["grad_norms"] = grad_norms(losses, shared)
    return weighter.client.report(weighter.job, step, [float(L) for L in losses],
                                  rank=weighter.rank, epoch=epoch, wait=wait, **kw)


def phase_full(a, methods, batches):
    probe_helpers(a.out, a.rank, batches[0])
    probe_coeffs(a.url, a.out, a.rank, batches[0])
    for mi, m in enumerate(methods):
        params = METHODS[m]
        # uninterrupted
        model, opt, w = ex.setup(a.url, m + "-full", m, params)
        log = Log(a.out, m + "-full", a.rank)
        for step, _ in ex.train(model, opt, w, batches, STEPS_PER_EPOCH):
            log.step(w)
        log.eval(model)
        log.close()
        dist.barrier()
        # to be killed after step K + J
        model, opt, w = ex.setup(a.url, m + "-resume", m, params)
        log = Log(a.out, m + "-resume", a.rank)
        for step, _ in ex.train(model, opt, w, batches[:a.k + a.j + 1], STEPS_PER_EPOCH):
            log.step(w)
            if step == a.k and a.rank == 0:
                torch.save(ex.checkpoint(model, opt, w), os.path.join(a.out, m + ".ckpt"))
        log.close()
        nxt = a.k + a.j + 1
        last = mi == len(methods) - 1
        if a.rank == 0:
            if last:
                open(os.path.join(a.out, "rank0.at-kill"), "w").close()
                lone_report(w, model, nxt, batches[nxt], nxt // STEPS_PER_EPOCH, wait=True)
                raise SystemExit("the barrier was not supposed to complete")
            d = lone_report(w, model, nxt, batches[nxt], nxt // STEPS_PER_EPOCH, wait=False)
            assert d.status == "pending", d
        else:
            if last:
                deadline = time.monotonic() + 30
                while not pending_reported(w.client, w.job, nxt):
                    if time.monotonic() > deadline:
                        raise SystemExit("rank 0's lone report never arrived")
                    time.sleep(0.01)
                open(os.path.join(a.out, "rank1.at-kill"), "w").close()
                time.sleep(120)  # the test kills us here
                raise SystemExit("not killed")
        dist.barrier()


def phase_resume(a, methods, batches):
    for m in methods:
        model, opt, w = ex.setup(a.url, m + "-resume", m, METHODS[m])
        ckpt = torch.load(os.path.join(a.out, m + ".ckpt"))
        ex.resume(model, opt, w, ckpt)
        log = Log(a.out, m + "-resumed", a.rank)
        for step, _ in ex.train(model, opt, w, batches, STEPS_PER_EPOCH, start=a.k + 1):
            log.step(w)
        log.eval(model)
        log.close()
        dist.barrier()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--phase", choices=["full", "resume"], required=True)
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--init", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--methods", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--j", type=int, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + a.init, rank=a.rank,
                            world_size=a.world, timeout=datetime.timedelta(seconds=60))
    methods = a.methods.split(",")
    batches = batches_for(a.rank, a.steps)
    if a.phase == "full":
        phase_full(a, methods, batches)
    else:
        phase_resume(a, methods, batches)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
