"""Everything a request handler needs, built once per worker in the app's lifespan.

Holds the Triton client, the live routing table (replaced whole on reload), admission control, the
decode thread pool, the shadow runner, and a cached view of Triton's health and model states that a
background probe refreshes — so `/readyz` and fast-fail decisions never wait on Triton.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploylab.services.modelzoo.manifest import Manifest, read_repository
from deploylab.services.modelzoo.repository import available_cores

from .drain import Drain
from .errors import BackendUnavailableError, GatewayError, ModelNotFoundError, ModelNotReadyError
from .limits import InFlightLimiter
from .metrics import ROUTING_RELOADS, SHED, TRITON_UP
from .model_profile import batch_slots, full_batch_seconds, input_datatype, instance_count
from .routing import RoutingError, RoutingTable, Target
from .settings import GatewaySettings
from .shadow import ShadowRunner
from .triton_client import TritonClient

log = logging.getLogger("deploylab.gateway")

#: Triton's repository index lists never-loaded models (explicit mode) without a state.
NOT_LOADED = "NOT_LOADED"

#: Health probes that may time out in a row before Triton counts as not ready, and their timeout:
#: generous, because on a busy machine (a model loading, a load test) a healthy answer can be late.
SLOW_PROBES_TOLERATED = 3
PROBE_TIMEOUT_S = 1.0

#: How often admission re-reads each model's knee and full-batch compute time from Triton.
ADMISSION_PROFILE_PERIOD_S = 5.0


class GatewayContext:
    def __init__(self, settings: GatewaySettings, routing: RoutingTable, drain: Drain | None = None) -> None:
        self.settings = settings
        self.drain = drain or Drain()
        self.routing = routing
        self.client = TritonClient(
            settings.triton_url,
            pool_size=settings.triton_pool_size,
            connect_timeout_s=settings.connect_timeout_s,
            request_timeout_s=settings.request_timeout_s,
            shared_memory_slots=settings.shared_memory_slots,
            api_key=None if settings.triton_api_key is None else settings.triton_api_key.get_secret_value(),
        )
        self.limiter = InFlightLimiter(
            settings.max_inflight_per_model,
            settings.admission,
            None if settings.slo_p99_ms is None else settings.slo_p99_ms / 1e3,
            {model: ms / 1e3 for model, ms in settings.model_slo_p99_ms.items()},
            settings.slo_full_batch_multiple,
        )
        self._profiles_read = 0.0
        self.shadows = ShadowRunner(settings.shadow_max_inflight)
        threads = settings.preprocess_threads or available_cores()
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        self.triton_ready = False
        self.model_states: dict[str, str] = {}
        self.last_probe = 0.0
        self._slow_probes = 0
        self._stopping = False
        self._configs: dict[str, dict[str, Any]] = {}
        self._routing_mtime = _mtime(settings.routing_file)
        self._probe_task: asyncio.Task[None] | None = None
        self._manifests: dict[str, Manifest] = {}
        self._manifests_read = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.client.start()
        await self.probe()
        self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())

    @property
    def draining(self) -> bool:
        """SIGTERM received (drain phase) or the app is shutting down: /readyz says so."""
        return self._stopping or self.drain.draining

    async def stop(self) -> None:
        self._stopping = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await self.shadows.drain(timeout_s=2.0)
        await self.client.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- Triton health -----------------------------------------------------------------------
    async def probe(self) -> None:
        """Refresh Triton readiness and model states (one index call covers every model).

        A refused connection or a "not ready" answer flips readiness at once (fast 503s after a
        crash); a probe that merely timed out does not, until it happens SLOW_PROBES_TOLERATED times
        in a row: a busy server (loading a model on a small machine) answers late but is not down,
        and flapping readiness would turn its slowness into 503s.
        """
        answer = await self.client.server_readiness(timeout_s=PROBE_TIMEOUT_S)
        if answer is None:
            self._slow_probes += 1
            if self._slow_probes < SLOW_PROBES_TOLERATED:
                return
        else:
            self._slow_probes = 0
        ready = bool(answer)
        states: dict[str, str] = {}
        if ready:
            try:
                states = await self.client.repository_index()
            except GatewayError:
                states = self.model_states  # keep what we knew rather than forget every model
        elif self.triton_ready:
            log.warning("Triton at %s is not ready", self.settings.triton_url)
        if states != self.model_states:
            self._configs.clear()  # a reload may change the config
        self.triton_ready, self.model_states = ready, states
        self.last_probe = time.monotonic()
        TRITON_UP.set(1 if ready else 0)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            try:
                await self.probe()
                self._maybe_reload_routing()
                if time.monotonic() - self._profiles_read >= ADMISSION_PROFILE_PERIOD_S:
                    await self.refresh_admission_profiles()
            except Exception:  # the probe must outlive any single failure
                log.exception("health probe failed")

    def check_servable(self, target: Target) -> None:
        """Fail fast (503/404) when the probe already knows the request cannot succeed."""
        if not self.triton_ready and self.last_probe:
            SHED.labels(target.triton_model, "triton_down").inc()
            raise BackendUnavailableError(f"Triton at {self.settings.triton_url} is not ready")
        state = self.model_states.get(target.triton_model)
        if self.model_states and state is None:
            raise ModelNotFoundError(
                f"model {target.triton_model!r} is not in Triton's model repository",
                details={"served": self.served_models()},
            )
        if state == NOT_LOADED:
            raise ModelNotReadyError(
                f"model {target.triton_model!r} is exported but not loaded in Triton; serve it "
                f"(`deploylab serve {target.model}`) or load it "
                f"(POST /admin/models/{target.triton_model}/load)"
            )
        if state is not None and state != "READY":
            raise ModelNotReadyError(f"model {target.triton_model!r} is {state.lower()} in Triton")

    def required_models(self) -> list[str]:
        """Routed models this deployment loaded (or tried to): they must be READY for /readyz.

        Models in the repository that were never loaded (a subset was served on purpose) don't count;
        a routed model that was unloaded or failed does.
        """
        routed = {t.triton_model for t in self.routing.targets()}
        return sorted(n for n in routed if n in self.model_states and self.model_states[n] != NOT_LOADED)

    def served_models(self) -> list[str]:
        return sorted(name for name, state in self.model_states.items() if state == "READY")

    async def max_batch_size(self, triton_model: str) -> int:
        """The model's max_batch_size from Triton's config (cached until model states change)."""
        return int((await self._config(triton_model)).get("max_batch_size", 0))

    async def input_datatype(self, triton_model: str) -> str:
        """The v2 datatype the model's input takes (FP32; UINT8 for an export that normalises in its
        graph), from Triton's config (cached until model states change)."""
        return input_datatype(await self._config(triton_model))

    async def _config(self, triton_model: str) -> dict[str, Any]:
        if triton_model not in self._configs:
            self._configs[triton_model] = await self.client.model_config(triton_model)
        return self._configs[triton_model]

    async def refresh_admission_profiles(self) -> None:
        """Tell admission each ready model's knee and full-batch compute time (Triton's numbers)."""
        self._profiles_read = time.monotonic()
        for model in self.limiter.models():
            if self.model_states.get(model) != "READY":
                continue
            try:
                config = await self._config(model)
                statistics = await self.client.model_statistics(model)
            except GatewayError as exc:  # the next period tries again; admission keeps what it had
                log.debug("admission profile of %s not read: %s", model, exc)
                continue
            max_batch = int(config.get("max_batch_size", 0))
            self.limiter.set_profile(
                model,
                instances=instance_count(config),
                batch_slots=batch_slots(config),
                max_batch_size=max_batch,
                full_batch_s=full_batch_seconds(statistics, max_batch),
            )

    def manifests(self) -> dict[str, Manifest]:
        """Export manifests (facts for /v1/models); re-read at most every 5 s."""
        if time.monotonic() - self._manifests_read > 5.0:
            self._manifests = read_repository(self.settings.model_repository)
            self._manifests_read = time.monotonic()
        return self._manifests

    # -- routing reload ----------------------------------------------------------------------
    def reload_routing(self) -> RoutingTable:
        """Load and validate the routing file; on failure keep the table in use and raise."""
        try:
            table = RoutingTable.from_file(self.settings.routing_file)
        except RoutingError:
            ROUTING_RELOADS.labels("rejected").inc()
            raise
        self.routing = table
        self._routing_mtime = _mtime(self.settings.routing_file)
        ROUTING_RELOADS.labels("applied").inc()
        log.info("routing table reloaded from %s (%d routes)", table.source, len(table.routes))
        return table

    def _maybe_reload_routing(self) -> None:
        """Workers pick up edits to the routing file on their own (multi-worker safe)."""
        mtime = _mtime(self.settings.routing_file)
        if mtime is None or mtime == self._routing_mtime:
            return
        self._routing_mtime = mtime
        try:
            self.reload_routing()
        except RoutingError as exc:
            log.error("routing file changed but is invalid, keeping the previous table: %s", exc)


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
