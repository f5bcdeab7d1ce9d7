"""Reading tritonserver's restricted-API flags out of a deployment's command line."""

from __future__ import annotations


def restricted_groups(words: list[str], flag: str) -> dict[str, tuple[str, str]]:
    """`--flag=<api>,<api>:<key>=<value>` (repeatable) → api → (header key, value)."""
    groups: dict[str, tuple[str, str]] = {}
    for word in words:
        if word.startswith(f"{flag}="):
            apis, _, setting = word.removeprefix(f"{flag}=").partition(":")
            key, _, value = setting.partition("=")
            for api in apis.split(","):
                assert api not in groups, f"{api} in two {flag} groups (tritonserver refuses that)"
                groups[api] = (key, value)
    return groups


#: tritonserver's API groups (`tritonserver --help`, --http-restricted-api).
TRITON_API_GROUPS = {
    "health", "metadata", "inference", "shared-memory", "model-config", "model-repository",
    "statistics", "trace", "logging",
}  # fmt: skip


def assert_triton_restrictions(words: list[str]) -> None:
    """Triton's start-up script draws a lock key, and both protocols restrict the same API groups:
    model-repository to the key the gateway holds, shared memory, trace and logging to the lock key."""
    assert words[:5] == ["read", "-r", "locked", "<", "/proc/sys/kernel/random/uuid"]
    for flag in ("--http-restricted-api", "--grpc-restricted-protocol"):
        groups = restricted_groups(words, flag)
        assert set(groups) <= TRITON_API_GROUPS, set(groups) - TRITON_API_GROUPS
        assert groups["model-repository"] == ("deploylab-triton-key", "$TRITON_API_KEY"), flag
        for api in ("shared-memory", "trace", "logging"):
            assert groups[api] == ("deploylab-triton-locked", "$locked"), (flag, api)
