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
