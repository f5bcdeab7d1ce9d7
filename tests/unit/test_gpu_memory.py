"""GPU memory in the serving cost and the decision: charged per process tree as host memory is, read
from NVML where the driver is, absent (and the reports unchanged) where it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploylab.loadtests.server_metrics import gpu_cost
from deploylab.services.measure.gpu_memory import MIB, GpuMemory, read_gpu_memory
from deploylab.services.measure.process_tree import sample_trees
from deploylab.services.report.decision import decide
from deploylab.services.report.results import ProcessCost, RunResults, load_results
from deploylab.services.report.tables import decision_lines, decision_table

from tests.unit.test_k8s_patch import with_costs

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "results_fixture"
GPU_TOTAL = 81_559 * MIB


def test_nvml_reading_is_none_exactly_where_the_nvidia_driver_is_missing() -> None:
    reading = read_gpu_memory()
    if Path("/proc/driver/nvidia").exists():
        assert reading is not None and reading.device_total > 0
    else:
        assert reading is None


def test_a_process_tree_is_charged_the_gpu_memory_of_its_members_only() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reading = GpuMemory(by_pid={child.pid: 1500 * MIB, 2**22 + 7: 9000 * MIB}, device_total=GPU_TOTAL)
        samples = sample_trees({"triton": os.getpid()}, gpu=reading)
        assert samples is not None and samples["triton"].gpu_memory_mib == 1500
        without = sample_trees({"triton": os.getpid()})
        assert without is not None and without["triton"].gpu_memory_mib is None
    finally:
        child.kill()
        child.wait()


def parts(triton_gpu: float | None) -> dict[str, ProcessCost]:
    return {
        "triton": ProcessCost(cpu_s=6, cores=1, memory_mib=900, processes=2, gpu_memory_mib=triton_gpu),
        "gateway": ProcessCost(cpu_s=1, cores=0.2, memory_mib=150, processes=1),
    }


def test_serving_cost_takes_the_processes_memory_then_the_devices_where_pids_are_foreign() -> None:
    local = GpuMemory(by_pid={os.getpid(): 1}, device_used=3000 * MIB, device_total=GPU_TOTAL)
    own = gpu_cost(parts(1728.0), local)
    assert own == {"gpu_memory_mib": 1728.0, "gpu_memory_scope": "processes", "gpu_total_mib": 81559.0}
    # NVML lists a PID this namespace lacks: a container sees the host's PIDs, so the devices' use is charged
    foreign = GpuMemory(by_pid={2**22 + 7: 1700 * MIB}, device_used=2100 * MIB, device_total=GPU_TOTAL)
    assert gpu_cost(parts(None), foreign)["gpu_memory_scope"] == "devices"
    assert gpu_cost(parts(None), foreign)["gpu_memory_mib"] == 2100.0
    # a CPU deployment on a GPU host: another local process holds the GPU, the serving processes nothing
    assert gpu_cost(parts(None), GpuMemory(by_pid={os.getpid(): MIB}, device_total=GPU_TOTAL)) == {}
    assert gpu_cost(parts(None), None) == {}


def with_gpu_cost(results: RunResults, gpu_mib: float | None) -> RunResults:
    """The recorded run with test_k8s_patch's serving costs, Triton's tree holding `gpu_mib` of GPU memory."""
    results = with_costs(results)
    for point in [*results.points, *(step for ramp in results.ramps for step in ramp.steps)]:
        assert point.cost is not None
        point.cost.by_process = parts(gpu_mib)
        if gpu_mib:
            fields = gpu_cost(point.cost.by_process, GpuMemory(device_total=GPU_TOTAL))
            point.cost = point.cost.model_copy(update=fields)
    return results


def test_the_decision_shows_gpu_memory_per_replica_only_when_a_deployment_held_some() -> None:
    on_gpu = decide(with_gpu_cost(load_results(FIXTURE), 1728.0))
    table = decision_table(on_gpu)
    column = table.columns.index("GPU MiB / replica")
    assert {row[column] for row in table.rows if row[4] != "–"} == {"1,728 of 81,559"}
    assert "1,728 of 81,559 MiB of GPU memory" in decision_lines(on_gpu)[0]
    on_cpu = decide(with_gpu_cost(load_results(FIXTURE), None))
    assert "GPU MiB / replica" not in decision_table(on_cpu).columns
    assert "GPU" not in decision_lines(on_cpu)[0]
