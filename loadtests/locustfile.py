"""Locust scenarios for deploylab: the classify API and KServe v2 binary infer, closed and open loop.

Run it alone (`locust -f loadtests/locustfile.py --config loadtests/locust.conf --host URL`), under a
shape from `loadtests/shapes.py`, or through `deploylab loadtest`, which drives the same classes from
`loadtests/session.py`. One user class per scenario:

- `ClassifyUser`: closed loop, raw JPEG → `POST /v1/models/{model}/classify` (the gateway).
- `V2InferUser`: closed loop, preprocessed tensor (FP32, or UINT8 pixels when the served model's config
  says so) → `POST /v2/models/{triton_model}/infer`
  (the gateway's passthrough or Triton itself: only the host differs).
- `OpenLoopUser`: arrivals at `--arrival-rate` per second (Poisson), whatever the responses do; the API
  is picked with `--api`. Arrivals that find `--max-outstanding` requests already in flight are
  counted under the `dropped arrival` name, never silently delayed (no coordinated omission).

The model is chosen with `--model`/`--variant`; every response is validated (`loadtests/payloads.py`),
so a wrong answer is a failure. Every request's time is also kept raw (`LATENCIES`; workers ship theirs
with each statistics report), so the percentiles a session reports come from the measurement core's
one definition, not from Locust's rounded histogram.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import urllib.request
from typing import Any

import gevent
from deploylab.loadtests.payloads import (
    Api,
    InvalidResponseError,
    PreparedRequest,
    Target,
    build_requests,
    check_classify,
    check_v2,
    input_datatype,
    resolve_target,
)
from deploylab.services.measure.images import sample_images
from deploylab.services.measure.outcomes import LatencyLog
from gevent.pool import Pool
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.user.users import LOCUST_STATE_STOPPING

#: Custom messages of the flush handshake (session.py): master asks, worker sends its stats, then acks.
FLUSH_REQUEST = "deploylab_flush"
FLUSH_DONE = "deploylab_flushed"
DROPPED_NAME = "dropped arrival"
#: The open-loop client pool: the ceiling on `--max-outstanding`.
OPEN_LOOP_POOL = 256
#: Where a worker's statistics report carries the raw latencies recorded since its last report.
LATENCIES_KEY = "deploylab_latencies"
#: Every request's time in ms, by request name: in this process (local runner, or a master merging
#: its workers' reports), or, on a worker, what the next report will ship.
LATENCIES = LatencyLog()
#: Whether this process keeps raw times: a `deploylab loadtest` session (it asks, `keep_latencies()`)
#: and every worker (it ships them every few seconds) do; a local or master Locust run by hand does not,
#: so an hour-long run does not grow its memory by a float per request.
_KEEPING = {"latencies": False}


def keep_latencies() -> None:
    """Record every request's time in `LATENCIES` from now on (the session's percentiles need them)."""
    _KEEPING["latencies"] = True


class DroppedArrivalError(Exception):
    """An open-loop arrival that found the outstanding-request limit reached."""


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("deploylab")
    group.add_argument("--model", default="resnet18", help="catalog model name, e.g. resnet50")
    group.add_argument("--variant", default="", help="model variant (default: the model's default)")
    group.add_argument("--api", default="classify", choices=["classify", "v2"], help="OpenLoopUser's API")
    group.add_argument("--top-k", type=int, default=5, help="classify top_k")
    group.add_argument("--images", type=int, default=4, help="sample photos to cycle through")
    group.add_argument("--arrival-rate", type=float, default=10.0, help="OpenLoopUser arrivals/s per user")
    group.add_argument(
        "--max-outstanding", type=int, default=64, help="OpenLoopUser in-flight limit per user"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the open-loop arrival process")


@events.request.add_listener
def record_latency(name: str, response_time: float, **_kwargs: Any) -> None:
    if _KEEPING["latencies"]:
        LATENCIES.add(name, response_time)


@events.report_to_master.add_listener
def ship_latencies(data: dict[str, Any], **_kwargs: Any) -> None:
    data[LATENCIES_KEY] = LATENCIES.drain()


@events.worker_report.add_listener
def merge_latencies(data: dict[str, Any], **_kwargs: Any) -> None:
    if _KEEPING["latencies"]:
        for name, values in data.get(LATENCIES_KEY, {}).items():
            LATENCIES.extend(name, values)


@events.init.add_listener
def register_flush(environment: Environment, **_kwargs: Any) -> None:
    """On a worker: answer the master's flush request by reporting stats now, then acknowledging.

    Messages on the worker's connection arrive in order, so the master holds every sample taken before
    the flush once it sees the ack (Locust alone reports only every few seconds).
    """
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return
    keep_latencies()  # shipped with every report, so a worker holds only a few seconds' worth

    def on_flush(environment: Environment, msg: Any, **_kw: Any) -> None:
        data: dict[str, Any] = {}
        environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        runner.send_message("stats", data)
        runner.send_message(FLUSH_DONE, msg.data)

    runner.register_message(FLUSH_REQUEST, on_flush)


def option(environment: Environment, name: str, default: Any) -> Any:
    options = environment.parsed_options
    return getattr(options, name, default) if options is not None else default


class DeploylabUser(FastHttpUser):
    """Shared plumbing: resolve the target from options, prepare bodies once, send and validate."""

    abstract = True
    api: Api = "classify"
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        env = self.environment
        self.target: Target = resolve_target(
            option(env, "model", "resnet18"), option(env, "variant", "") or None
        )
        self.top_k = int(option(env, "top_k", 5))
        images = sample_images(int(option(env, "images", 4)))
        api = self.api_in_use()
        datatype = self.served_datatype() if api == "v2" else "FP32"
        prepared = build_requests(api, self.target, images, self.top_k, datatype)
        # Users start at different images so concurrent requests are not all the same bytes.
        start = random.Random(id(self)).randrange(len(prepared))
        self.requests = itertools.cycle(prepared[start:] + prepared[:start])

    def api_in_use(self) -> Api:
        return self.api

    def served_datatype(self) -> str:
        """The input datatype the served model's config declares (FP32 when it cannot be read: the
        requests then fail with the server's own 400, which names the datatype it wants). Read outside
        Locust's client, so the look-up is no request in the statistics."""
        url = f"{(self.host or '').rstrip('/')}/v2/models/{self.target.triton_model}/config"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own target
                return input_datatype(json.loads(response.read()))
        except (OSError, ValueError):
            return "FP32"

    def send(self, request: PreparedRequest) -> None:
        with self.client.post(
            request.path,
            data=request.body,  # type: ignore[arg-type]  # bytes go out as they are; Locust annotates str | dict
            headers=dict(request.headers),
            name=request.name,
            catch_response=True,
        ) as response:
            try:
                body = response.content or b""
                headers = dict(response.headers.items()) if response.headers else {}
                if self.api_in_use() == "classify":
                    check_classify(response.status_code, headers, body, self.target, self.top_k)
                else:
                    check_v2(response.status_code, headers, body, self.target)
            except InvalidResponseError as exc:
                response.failure(str(exc))


class ClassifyUser(DeploylabUser):
    """Closed loop on the classify API: send a JPEG, wait for the answer, send the next."""

    api: Api = "classify"

    @task
    def classify(self) -> None:
        self.send(next(self.requests))


class V2InferUser(DeploylabUser):
    """Closed loop on KServe v2 infer with a binary tensor of the model's input datatype (gateway
    passthrough or Triton direct)."""

    api: Api = "v2"

    @task
    def infer(self) -> None:
        self.send(next(self.requests))


class OpenLoopUser(DeploylabUser):
    """Open loop: Poisson arrivals at `--arrival-rate`/s, each sent on its own greenlet.

    A graceful stop ends the arrivals and waits for the requests in flight, so every request that
    reached the server is also in Locust's count.
    """

    concurrency = OPEN_LOOP_POOL

    def api_in_use(self) -> Api:
        chosen = str(option(self.environment, "api", "classify"))
        return "v2" if chosen == "v2" else "classify"

    @task
    def arrive(self) -> None:
        rate = float(option(self.environment, "arrival_rate", 10.0))
        limit = min(int(option(self.environment, "max_outstanding", 64)), OPEN_LOOP_POOL)
        if rate <= 0 or limit < 1:
            raise ValueError("--arrival-rate and --max-outstanding must be positive")
        rng = random.Random(hash((int(option(self.environment, "seed", 0)), id(self))))
        in_flight = Pool(limit)
        next_arrival = time.perf_counter()
        # NOTE: `_state` is how Locust itself tells a running task that a graceful stop was asked for.
        while self._state != LOCUST_STATE_STOPPING:
            next_arrival += rng.expovariate(rate)
            delay = next_arrival - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            if self._state == LOCUST_STATE_STOPPING:
                break
            if in_flight.full():
                self.record_dropped(limit)
                continue
            in_flight.spawn(self.send, next(self.requests))
        in_flight.join()

    def record_dropped(self, limit: int) -> None:
        self.environment.events.request.fire(
            request_type="ARRIVAL",
            name=DROPPED_NAME,
            response_time=0,
            response_length=0,
            exception=DroppedArrivalError(f"{limit} requests already in flight"),
            context={},
        )
