"""How many torch threads this process should use, chosen from the machine as it is now.

The ``aegen`` command calls :func:`prepare_process` first thing, before torch is
imported: OpenMP (libgomp, the runtime of PyTorch's CPU build) reads its wait
policy once, when the library is loaded, so ``OMP_WAIT_POLICY`` must be in the
environment by then. Waiting threads then sleep instead of spinning: with one
other busy process on a 2-core machine, two spinning threads made a step 4.3x
slower instead of 2x (issue 20).

The count itself is chosen by :func:`choose_threads`, a pure function of

- the cores this process may run on (``os.sched_getaffinity``),
- the cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``),
- how busy those cores are with other work: ``/proc/stat`` read when the command
  starts and again once torch is imported (about two seconds later, at least
  :data:`MIN_WINDOW` apart), as the number of the allowed cores that sat idle plus
  the cores this process itself kept busy meanwhile (its own CPU time, from
  ``os.times``). A window that long averages over a process that only flickers by;
  a 50 ms one (5 ticks of the kernel's clock per core) once pinned a 21-minute run
  to one thread because something else was starting at that moment.

On an idle machine without a quota it is every allowed core, which is what torch
does by default. ``--threads N`` or ``AEGEN_THREADS=N`` override it. Nothing here
imports torch; the library never calls this (importing ``aegen`` changes nothing).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .errors import UserError

THREADS_ENV = "AEGEN_THREADS"
FLUSH_ENV = "AEGEN_FLUSH_DENORMAL"  # "0": keep denormals
MALLOC_ENV = "AEGEN_MALLOC"  # "system": glibc's own malloc thresholds
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
MIN_WINDOW = 0.5  # seconds: the shortest stretch the busy cores are read over


@dataclass(frozen=True)
class ThreadChoice:
    """The chosen intra-op thread count and why (recorded in each run's config.json)."""

    threads: int
    source: str  # "--threads", "AEGEN_THREADS" or "machine"
    allowed: int  # cores this process may use (affinity and quota)
    idle: float | None  # allowed cores found idle at start; None where not measured
    wait_policy: str  # OMP_WAIT_POLICY as torch's OpenMP runtime read it

    def to_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        idle = "not measured" if self.idle is None else f"{self.idle:.2f} idle"
        return (
            f"threads: {self.threads} ({self.source}; {self.allowed} allowed, {idle}; "
            f"OpenMP wait policy {self.wait_policy})"
        )


def parse_cpu_max(text: str) -> float | None:
    """A cgroup v2 ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``) as cores, or None."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = float(parts[0]), float(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> float | None:
    """This process's CPU quota in cores, or None when it has none (or it cannot be read).
    ``membership`` is the process's ``/proc/self/cgroup``; ``root`` where cgroups mount."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hier, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        try:
            if hier == "0" and controllers == "":  # v2
                return parse_cpu_max((root / rel / "cpu.max").read_text())
            if "cpu" in controllers.split(","):  # v1
                base = root / "cpu,cpuacct" if (root / "cpu,cpuacct").is_dir() else root / "cpu"
                q = float((base / rel / "cpu.cfs_quota_us").read_text())
                p = float((base / rel / "cpu.cfs_period_us").read_text())
                return q / p if q > 0 and p > 0 else None
        except (OSError, ValueError):
            continue
    return None


def read_cpu_times(path: str = "/proc/stat") -> dict[int, tuple[int, int]]:
    """Per-CPU ``(idle, total)`` jiffies from ``/proc/stat`` (idle includes iowait)."""
    out = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            v = [int(f) for f in fields[:8]]
            out[int(name[3:])] = (v[3] + v[4], sum(v))
    return out


def idle_cores(
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
    cpus: set[int],
    own_cores: float = 0.0,
) -> float | None:
    """How many of ``cpus`` were free of other work between two :func:`read_cpu_times`
    samples: the idle ones, plus ``own_cores`` (the cores this process kept busy
    meanwhile, which would be free without it), at most ``len(cpus)``."""
    idle = 0.0
    for c in cpus:
        if c not in before or c not in after:
            return None
        d_total = after[c][1] - before[c][1]
        if d_total <= 0:
            return None
        idle += (after[c][0] - before[c][0]) / d_total
    return min(float(len(cpus)), idle + max(0.0, own_cores))


def read_steal(path: str = "/proc/stat") -> tuple[int, int] | None:
    """``(steal, total)`` jiffies of all CPUs together from ``/proc/stat``, or None where
    it cannot be read. *Steal* is time a hypervisor gave the machine's virtual CPUs to
    other guests: on a shared cloud host it came and went within one session here, and
    while it lasted (about 40 % of two cores) the same training ran 1.6 times slower."""
    try:
        first = Path(path).read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(first) < 9 or first[0] != "cpu":
        return None
    v = [int(f) for f in first[1:9]]
    return v[7], sum(v)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of all CPU time between two :func:`read_steal` readings that was stolen."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 4)


def own_cpu_seconds() -> float:
    """User and system CPU seconds of this process so far (every thread)."""
    t = os.times()
    return t.user + t.system


def choose_threads(
    affinity: int, quota: float | None, idle: float | None, requested: int | None = None
) -> tuple[int, int]:
    """``(threads, allowed)`` for ``affinity`` usable CPUs, a quota in cores (or None),
    ``idle`` cores measured idle among them (or None) and an explicit request.

    ``allowed`` is the affinity capped by the quota (rounded up: a 1.5-core quota
    still runs two threads part of the time). The machine's choice is the idle
    cores, rounded, at least 1, at most ``allowed``; with nothing measured it is
    ``allowed``. A request above ``allowed`` is a user error: more threads than
    cores is what makes OpenMP threads wait on each other.
    """
    allowed = max(1, affinity)
    if quota is not None:
        allowed = max(1, min(allowed, math.ceil(quota - 1e-9)))
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads/{THREADS_ENV} must be at least 1, got {requested}")
        if requested > allowed:
            raise UserError(
                f"--threads/{THREADS_ENV}={requested}: this process may use {allowed} "
                f"core{'s' * (allowed != 1)}; ask for at most {allowed}"
            )
        return requested, allowed
    if idle is None:
        return allowed, allowed
    return max(1, min(allowed, math.floor(idle + 0.5))), allowed


def _requested(flag: int | None) -> tuple[int | None, str]:
    if flag is not None:
        return flag, "--threads"
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None, "machine"
    try:
        return int(text), THREADS_ENV
    except ValueError:
        raise UserError(f"{THREADS_ENV}={text!r} is not a whole number") from None


@dataclass
class _Reading:
    """The first half of a measurement: what the cores had done when the command started."""

    cpus: set[int]
    cpu_times: dict[int, tuple[int, int]]
    own: float
    wall: float


def start_reading(cpus: set[int]) -> _Reading:
    return _Reading(cpus, read_cpu_times(), own_cpu_seconds(), time.monotonic())


def finish_reading(r: _Reading, min_window: float = MIN_WINDOW) -> float | None:
    """Idle cores among ``r.cpus`` since :func:`start_reading` (waiting, without
    working, until ``min_window`` seconds have passed)."""
    wait = min_window - (time.monotonic() - r.wall)
    if wait > 0:
        time.sleep(wait)
    after, own, wall = read_cpu_times(), own_cpu_seconds(), time.monotonic()
    return idle_cores(r.cpu_times, after, r.cpus, (own - r.own) / max(wall - r.wall, 1e-9))


def _allowed_cpus() -> set[int]:
    """The cores this process may run on (empty where the platform does not say)."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def allowed_cores() -> int:
    """How many cores this process may use: its affinity capped by the cgroup quota."""
    return choose_threads(len(_allowed_cpus()) or os.cpu_count() or 1, cgroup_quota(), None)[1]


def measure_choice(flag: int | None = None) -> ThreadChoice:
    """Read the machine (affinity, quota) and choose, starting the reading of the
    cores' busy time: :func:`complete` (from :func:`apply`) finishes the machine's
    choice once torch is imported, so the import is the measurement window."""
    global _reading
    requested, source = _requested(flag)
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested is None and omp.isdigit() and int(omp) > 0:
        # set by the user or by `aegen train --nproc` for its ranks: torch obeys it
        requested, source = int(omp), "OMP_NUM_THREADS"
    cpus = _allowed_cpus()
    affinity = len(cpus) or os.cpu_count() or 1
    quota = cgroup_quota()
    if source == "OMP_NUM_THREADS":
        threads, allowed = requested, choose_threads(affinity, quota, None)[1]
    else:
        threads, allowed = choose_threads(affinity, quota, None, requested)
    policy = os.environ.get(WAIT_POLICY_ENV) or (
        f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ else ""
    )
    choice = ThreadChoice(threads, source, allowed, None, policy or "libgomp default")
    _reading = None
    if requested is None and len(cpus) > 1 and allowed > 1:
        _reading = start_reading(cpus)
    return choice


def complete(choice: ThreadChoice) -> ThreadChoice:
    """The machine's choice once the busy time started by :func:`measure_choice` is read."""
    global _reading
    if _reading is None or choice.source != "machine":
        return choice
    idle = finish_reading(_reading)
    _reading = None
    threads, _ = choose_threads(choice.allowed, None, idle)  # allowed: affinity and quota
    return replace(choice, threads=threads, idle=idle)


_reading: _Reading | None = None
_current: ThreadChoice | None = None
_flush: bool | None = None
_malloc: bool | None = None
_omp_early: bool | None = None


def prepare_process(flag: int | None = None, passive: bool = True) -> ThreadChoice:
    """Choose this process's threads and, before torch is loaded, make OpenMP's idle
    threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy).

    Only the ``aegen`` command calls it. Torch itself is told the count by
    :func:`apply` once it is imported.
    """
    global _current, _omp_early
    _omp_early = openmp_loaded()
    if passive and "GOMP_SPINCOUNT" not in os.environ:  # a user's own spin count wins
        os.environ.setdefault(WAIT_POLICY_ENV, "PASSIVE")
    _current = measure_choice(flag)  # apply() finishes reading the cores' busy time
    return _current


def recheck(min_window: float = MIN_WINDOW) -> ThreadChoice | None:
    """Before a fresh run trains: read the cores again if the machine's choice left some
    out, and use them if they are free now.

    A command that trains several runs (the pipeline's VQ-VAE and prior, the tour) and
    started while something else ran would keep the one thread it chose then for all of
    them: a prior's epochs took 190 s instead of 98 s that way, long after the other work
    had ended. Each run records its own count and a resumed run restores it
    (:func:`aegen.runs.keep_arithmetic`), so a count raised between runs changes no
    run's arithmetic part-way. Only a machine choice below the allowed cores is read
    again, for ``min_window`` seconds; a count the user set, or every allowed core, is
    kept without a reading, and the count is never lowered here (OpenMP's passive wait
    already keeps a busier machine from costing more than its share).
    """
    global _current
    c = _current
    if c is None or c.source != "machine" or c.threads >= c.allowed:
        return c
    cpus = _allowed_cpus()
    if len(cpus) < 2:
        return c
    idle = finish_reading(start_reading(cpus), min_window)
    threads, _ = choose_threads(c.allowed, None, idle)
    if threads > c.threads:
        import torch

        torch.set_num_threads(threads)
        _current = replace(c, threads=threads, idle=idle)
    return _current


def current() -> ThreadChoice | None:
    """The choice :func:`prepare_process` made in this process, or None (the library)."""
    return _current


def record_flush(on: bool) -> None:
    """Note whether the command flushed denormals (part of a run's arithmetic)."""
    global _flush
    _flush = on


def record_malloc(on: bool) -> None:
    """Note whether the command let malloc keep freed memory (speed only, not arithmetic)."""
    global _malloc
    _malloc = on


def apply(choice: ThreadChoice) -> ThreadChoice:
    """Complete the machine's choice (the busy time read over torch's import) and tell
    torch the count, before its first parallel work. On an idle machine with every
    allowed core chosen, torch keeps its own default (today's behaviour)."""
    global _current
    import torch

    choice = complete(choice)
    if _current is not None:
        _current = choice

    if choice.source == "machine" and choice.threads >= choice.allowed:
        return choice
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def process_record() -> dict | None:
    """What the command chose for this process's arithmetic, for a run's config.json
    (None in a library process, where aegen chose nothing)."""
    if _current is None:
        return None
    import torch

    return {
        **_current.to_json(),
        "torch_threads": torch.get_num_threads(),
        "flush_denormal": bool(_flush),
        "keep_freed_memory": bool(_malloc),
    }


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already mapped into this process (then a wait policy
    set now is too late)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return any(n in maps for n in ("libgomp", "libiomp", "libomp.so"))


def openmp_was_loaded() -> bool | None:
    """Whether OpenMP was already loaded when :func:`prepare_process` ran (its wait policy
    then came too late); None where it did not run."""
    return _omp_early


def flushed_in_every_thread(n: int = 1 << 20) -> bool:
    """Whether a parallel op over ``n`` denormals, spread over all of torch's threads,
    gives zeros everywhere: each thread flushes only if its own FTZ/DAZ bits are set."""
    import torch

    x = torch.full((n,), 1, dtype=torch.int32).view(torch.float32)  # the smallest denormal
    return int((x * 1.0).count_nonzero()) == 0
