"""The routing table: aliases, weighted splits with sticky assignment, shadows, variant selection.

Loaded from YAML and validated against the catalog before it replaces the table in use; a table that
fails validation never goes live (the old one keeps serving and the error says exactly what is wrong).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import yaml
from deploylab.services.modelzoo.catalog import (
    CATALOG,
    ServedForm,
    UnknownModelError,
    UnknownVariantError,
    resolve_triton_name,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidInputError, ModelNotFoundError

#: What a model or route name in a URL may look like; anything else is refused before lookup.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class RoutingError(ValueError):
    """A routing table that cannot go live; the message lists every problem."""


class BackendRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    variant: str | None = None
    weight: float = Field(1.0, gt=0)


class ShadowRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    variant: str | None = None
    fraction: float = Field(1.0, gt=0, le=1)


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    backends: list[BackendRef] = Field(min_length=1)
    shadow: ShadowRef | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"route name {value!r} must match {NAME_PATTERN.pattern}")
        return value


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sticky_header: str = "X-Deploylab-Key"
    routes: list[RouteConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RoutingConfig:
        names = [r.name for r in self.routes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate route names: {', '.join(duplicates)}")
        return self


#: A concrete Triton model a route sends to: catalog spec + variant.
Target: TypeAlias = ServedForm


@dataclass(frozen=True)
class WeightedTarget:
    target: Target
    weight: float


@dataclass(frozen=True)
class Route:
    name: str
    backends: tuple[WeightedTarget, ...]
    shadow: Target | None
    shadow_fraction: float

    @property
    def total_weight(self) -> float:
        return sum(b.weight for b in self.backends)


@dataclass(frozen=True)
class Resolution:
    """Where one request goes: the name it asked for, the target chosen, and an optional shadow."""

    route: str
    target: Target
    shadow: Target | None


def _target(model: str, variant: str | None) -> Target:
    """A catalog name (default variant unless given) or a Triton model name (its own variant)."""
    if model in CATALOG:
        spec = CATALOG[model]
        return Target(spec, spec.variant(variant).name)
    spec, own_variant = resolve_triton_name(model)
    if variant is not None and variant != own_variant:
        raise UnknownVariantError(model, variant, (own_variant,))
    return Target(spec, own_variant)


class RoutingTable:
    """Immutable once built; the app swaps whole tables on reload."""

    def __init__(self, config: RoutingConfig, source: str = "<memory>") -> None:
        self.config = config
        self.source = source
        self.sticky_header = config.sticky_header
        problems: list[str] = []
        routes: dict[str, Route] = {}
        for route in config.routes:
            try:
                backends = tuple(
                    WeightedTarget(_target(b.model, b.variant), b.weight) for b in route.backends
                )
                shadow = _target(route.shadow.model, route.shadow.variant) if route.shadow else None
            except (UnknownModelError, UnknownVariantError) as exc:
                problems.append(f"route {route.name!r}: {exc.args[0] if exc.args else exc}")
                continue
            routes[route.name] = Route(
                route.name, backends, shadow, route.shadow.fraction if route.shadow else 0.0
            )
        if problems:
            raise RoutingError("; ".join(problems))
        self.routes = routes

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, source: str = "<memory>") -> RoutingTable:
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise RoutingError(f"{source}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise RoutingError(f"{source}: expected a mapping with 'routes', got {type(raw).__name__}")
        try:
            config = RoutingConfig.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'table'}: {e['msg']}" for e in exc.errors()
            )
            raise RoutingError(f"{source}: {problems}") from None
        try:
            return cls(config, source)
        except RoutingError as exc:
            raise RoutingError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> RoutingTable:
        try:
            text = path.read_text()
        except OSError as exc:
            raise RoutingError(f"cannot read routing table {path}: {exc.strerror}") from None
        return cls.from_yaml(text, str(path))

    # -- resolving -----------------------------------------------------------------------------
    def resolve(self, name: str, variant: str | None = None, sticky_key: str | None = None) -> Resolution:
        """Resolve a URL name to a target; 404 listing known names, 400 for a variant it lacks."""
        if not NAME_PATTERN.match(name):
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise ModelNotFoundError(f"invalid model name {shown!r}", details={"known": self.known_names()})
        route = self.routes.get(name)
        try:
            if route is not None:
                chosen = self._pick(route, sticky_key).target
                target = Target(chosen.spec, chosen.spec.variant(variant).name) if variant else chosen
                return Resolution(name, target, self._maybe_shadow(route, sticky_key))
            return Resolution(name, _target(name, variant), None)
        except UnknownVariantError as exc:
            raise InvalidInputError(str(exc.args[0]), details={"variants": list(exc.known)}) from None
        except UnknownModelError:
            raise ModelNotFoundError(
                f"unknown model {name!r}", details={"known": self.known_names()}
            ) from None

    def fixed_target(self, name: str, variant: str | None = None) -> Target | None:
        """The target `name` always resolves to, or None (a weighted split, or not a valid name).

        Admission sheds before the route runs only where the target cannot depend on a random pick;
        every other request is admitted (or refused) by its route.
        """
        route = self.routes.get(name)
        try:
            if route is None:
                return _target(name, variant) if NAME_PATTERN.match(name) else None
            if len(route.backends) != 1:
                return None
            chosen = route.backends[0].target
            return Target(chosen.spec, chosen.spec.variant(variant).name) if variant else chosen
        except (UnknownModelError, UnknownVariantError):
            return None

    def _pick(self, route: Route, sticky_key: str | None) -> WeightedTarget:
        if len(route.backends) == 1:
            return route.backends[0]
        point = _unit_interval(route.name, sticky_key) * route.total_weight
        cumulative = 0.0
        for backend in route.backends:
            cumulative += backend.weight
            if point < cumulative:
                return backend
        return route.backends[-1]

    def _maybe_shadow(self, route: Route, sticky_key: str | None) -> Target | None:
        if route.shadow is None:
            return None
        if route.shadow_fraction >= 1.0 or random.random() < route.shadow_fraction:
            return route.shadow
        return None

    def known_names(self) -> list[str]:
        """Route names and catalog models: what a caller may put in the URL."""
        return sorted(self.routes) + sorted(CATALOG)

    def targets(self) -> list[Target]:
        """Every Triton target the table routes to (backends and shadows)."""
        seen: dict[str, Target] = {}
        for route in self.routes.values():
            for backend in route.backends:
                seen.setdefault(backend.target.triton_model, backend.target)
            if route.shadow is not None:
                seen.setdefault(route.shadow.triton_model, route.shadow)
        return list(seen.values())


def _unit_interval(route: str, sticky_key: str | None) -> float:
    """Sticky keys hash to a fixed point in [0, 1) per route; no key means a random point."""
    if not sticky_key:
        return random.random()
    digest = hashlib.blake2b(f"{route}\x00{sticky_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
