"""The health check (out of 16) and the quality score (0-100), each point with its evidence.

Health: eight signals, 0/1/2 points each. Score: eight weighted dimensions, each a ladder of
four steps worth 25 points; a dimension's level is 25 times the steps met *in order* (a step met
after a missing one is listed, but not counted: "plus contract tests" means little without
tests). Every step, met or not, carries the evidence it was decided on, so a user can argue
with it: the file, the setting, the missing piece.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel_audit.facts import extractor, is_test, module_fact
from keel_audit.model import Finding, Severity
from keel_audit.rules._web import (
    SAMPLE_DIRS,
    annotation_text,
    is_sample,
    mentions,
    module_routes,
    nodes_of,
)
from keel_audit.rules.ops import health_route
from keel_audit.rules.testing import async_database_evidence, async_mode_configured
from keel_audit.source import Module, Project

SCHEMA_VERSION = 1
WEIGHTS: tuple[tuple[str, int], ...] = (
    ("type safety", 15),
    ("error handling", 15),
    ("testing", 15),
    ("security", 15),
    ("performance", 10),
    ("observability", 10),
    ("database", 10),
    ("deployment", 10),
)
BANDS: tuple[tuple[int, str], ...] = (
    (80, "production-grade"),
    (60, "solid"),
    (40, "needs work"),
    (0, "critical"),
)


def band(score: int) -> str:
    return next(label for floor, label in BANDS if score >= floor)


@dataclass(frozen=True)
class Step:
    """One rung of a dimension's ladder, or one reason behind a health signal."""

    label: str
    met: bool
    evidence: str
    counted: bool = True

    def render(self) -> str:
        if self.met and self.counted:
            mark = "+"
        elif self.met:
            mark = "~"  # present, not counted: an earlier step is missing
        else:
            mark = "-"
        return f"{mark} {self.label}: {self.evidence}"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "met": self.met,
            "counted": self.counted,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Dimension:
    name: str
    weight: int
    level: int  # 0, 25, 50, 75 or 100
    steps: tuple[Step, ...]

    @property
    def points(self) -> float:
        return self.weight * self.level / 100


@dataclass(frozen=True)
class Signal:
    name: str
    points: int  # 0, 1 or 2
    evidence: tuple[Step, ...]


@dataclass
class ScoreReport:
    dimensions: list[Dimension]
    signals: list[Signal]
    score: int = field(init=False)
    health: int = field(init=False)
    band: str = field(init=False)

    def __post_init__(self) -> None:
        self.score = round(sum(d.points for d in self.dimensions))
        self.health = sum(s.points for s in self.signals)
        self.band = band(self.score)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "score": self.score,
            "band": self.band,
            "health": self.health,
            "health_max": 2 * len(self.signals),
            "dimensions": [
                {
                    "name": d.name,
                    "weight": d.weight,
                    "level": d.level,
                    "points": d.points,
                    "steps": [step.to_json() for step in d.steps],
                }
                for d in self.dimensions
            ],
            "signals": [
                {
                    "name": s.name,
                    "points": s.points,
                    "evidence": [step.to_json() for step in s.evidence],
                }
                for s in self.signals
            ],
        }

    def render_text(self) -> list[str]:
        lines = [f"Health check: {self.health}/{2 * len(self.signals)}"]
        for signal in self.signals:
            lines.append(f"  {signal.name:<15} {signal.points}/2")
            lines.extend(f"      {step.render()}" for step in signal.evidence)
        lines.append(f"Quality score: {self.score}/100 ({self.band})")
        for d in self.dimensions:
            lines.append(f"  {d.name:<15} {d.level:>3}/100 x {d.weight}% = {d.points:g}")
            lines.extend(f"      {step.render()}" for step in d.steps)
        return lines


# --- facts ------------------------------------------------------------------------------


@dataclass
class Facts:
    """What the score is decided on, gathered once from the project and the findings."""

    project: Project
    findings: Sequence[Finding]
    imports: dict[str, str] = field(default_factory=dict)  # top package → first module using it

    def __post_init__(self) -> None:
        for module in self.app_code:
            for target in module.imports.values():
                self.imports.setdefault(target.split(".")[0], module.path)

    @property
    def app_code(self) -> list[Module]:
        """The served product: not tests, examples, operator scripts or benches."""
        return [m for m in self.project.modules if _is_app_code(m)]

    @property
    def tests(self) -> list[Module]:
        return [m for m in self.project.modules if m.is_test]

    def uses(self, *packages: str) -> str | None:
        for package in packages:
            if package in self.imports:
                return f"{package} ({self.imports[package]})"
        return None

    def codes(self, *prefixes: str, minimum: Severity = Severity.INFO) -> list[Finding]:
        """Findings in the product (not in examples, scripts or benches) with these codes."""
        return [
            f
            for f in self.findings
            if f.code.startswith(prefixes)
            and f.severity >= minimum
            and not SAMPLE_DIRS.intersection(f.location.path.split("/")[:-1])
        ]

    def files(self, predicate: Callable[[str], bool]) -> list[str]:
        return [path for path in self.project.other_files if predicate(path)]

    def text_of(self, paths: list[str]) -> str:
        return "\n".join(self.project.read_text(p) or "" for p in paths)

    def tool(self, *keys: str) -> Any:
        table: Any = self.project.pyproject.get("tool", {})
        for key in keys:
            if not isinstance(table, dict):
                return None
            table = table.get(key)
        return table


def _is_app_code(module: Module) -> bool:
    """`Facts.app_code`'s test, for one module."""
    return not module.is_test and not is_sample(module)


def _is_migration(module: Module) -> bool:
    return "/versions/" in f"/{module.path}"


def _summary(findings: list[Finding], limit: int = 3) -> str:
    shown = ", ".join(f"{f.code} {f.location}" for f in findings[:limit])
    more = f" and {len(findings) - limit} more" if len(findings) > limit else ""
    return shown + more


def _ladder(name: str, weight: int, steps: list[Step]) -> Dimension:
    counted: list[Step] = []
    broken = False
    level = 0
    for step in steps:
        if step.met and not broken:
            level += 25
            counted.append(step)
        else:
            broken = True
            counted.append(Step(step.label, step.met, step.evidence, counted=not step.met))
    return Dimension(name, weight, level, tuple(counted))


def _step(label: str, found: str | None, missing: str) -> Step:
    return Step(label, found is not None, found if found is not None else missing)


# --- route facts ------------------------------------------------------------------------

_UNTYPED = frozenset({"", "Any", "dict", "Dict", "dict[str, Any]", "Dict[str, Any]", "object"})


@dataclass(frozen=True)
class _RouteSummary:
    """What the score reads of a route (a fact, so the handler's tree can go)."""

    typed: bool  # declares its response, or has none (204)
    dict_bodies: tuple[str, ...]  # "path:line arg: dict" for raw dict parameters
    is_async: bool
    documented: bool  # a docstring, a summary or a description


@extractor(when=lambda module: module.uses_fastapi and not module.is_test)
def _route_summaries(module: Module) -> tuple[_RouteSummary, ...]:
    summaries: list[_RouteSummary] = []
    for route in module_routes(module):
        func = route.func
        declared = route.kwarg("response_model") is not None or (
            annotation_text(func.returns) not in _UNTYPED
        )
        status = route.kwarg("status_code")
        no_body = isinstance(status, ast.Constant) and status.value == 204
        bodies = tuple(
            f"{module.path}:{func.lineno} {arg.arg}: dict"
            for arg in [*func.args.args, *func.args.kwonlyargs]
            if annotation_text(arg.annotation) in {"dict", "Dict", "dict[str, Any]"}
        )
        documented = bool(
            ast.get_docstring(func)
            or route.kwarg("summary") is not None
            or route.kwarg("description")
        )
        summaries.append(
            _RouteSummary(
                declared or no_body, bodies, isinstance(func, ast.AsyncFunctionDef), documented
            )
        )
    return tuple(summaries)


def _routes(facts: Facts) -> list[_RouteSummary]:
    """The summaries of the routes outside tests, in `iter_routes` order."""
    return [
        summary
        for module in facts.project.app_modules
        if not module.is_test
        for summary in module_fact(module, _route_summaries)
    ]


def _route_typing(facts: Facts) -> tuple[int, int, list[str]]:
    """(routes, routes with a declared response, routes taking a raw dict body)."""
    routes = _routes(facts)
    typed = sum(route.typed for route in routes)
    dict_bodies = [body for route in routes for body in route.dict_bodies]
    return len(routes), typed, dict_bodies


def _strict_types(facts: Facts) -> str | None:
    mypy = facts.tool("mypy")
    if isinstance(mypy, dict) and mypy.get("strict") is True:
        return "[tool.mypy] strict = true"
    pyright = facts.tool("pyright")
    if isinstance(pyright, dict) and pyright.get("typeCheckingMode") == "strict":
        return "[tool.pyright] typeCheckingMode = strict"
    if "mypy.ini" in facts.project.other_files:
        text = facts.project.read_text("mypy.ini") or ""
        if re.search(r"^\s*strict\s*=\s*(true|True|1)", text, re.MULTILINE):
            return "mypy.ini strict = True"
    return None


def _type_safety(facts: Facts) -> Dimension:
    total, typed, dict_bodies = _route_typing(facts)
    share = typed / total if total else 0.0
    described = f"{typed}/{total} routes declare a response model"
    steps = [
        Step("routes use Pydantic models", typed > 0, described if total else "no routes found"),
        Step("half the responses are declared", share >= 0.5, described),
        Step("80% of the responses are declared", share >= 0.8, described),
        Step(
            "strict type checking, no dict bodies",
            _strict_types(facts) is not None and not dict_bodies,
            "; ".join(filter(None, [_strict_types(facts), *dict_bodies[:3]]))
            or "no [tool.mypy] strict = true (or pyright strict) in pyproject.toml",
        ),
    ]
    return _ladder("type safety", 15, steps)


# --- error handling ---------------------------------------------------------------------


def _exception_classes(facts: Facts) -> dict[str, tuple[str, list[str]]]:
    """Project exception classes: name → (where, base names)."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for module in facts.app_code:
        for name, at, parents in module_fact(module, _classes_with_bases):
            classes[name] = (at, list(parents))
    exceptions: dict[str, tuple[str, list[str]]] = {}
    changed = True
    roots = {"Exception", "BaseException", "ValueError", "RuntimeError", "LookupError"}
    while changed:
        changed = False
        for name, (where, bases) in classes.items():
            if name not in exceptions and any(b in roots or b in exceptions for b in bases):
                exceptions[name] = (where, bases)
                changed = True
    return exceptions


@extractor(when=_is_app_code)
def _classes_with_bases(module: Module) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(name, where, last parts of the bases) of the module's classes that have bases."""
    return tuple(
        (
            node.name,
            f"{module.path}:{node.lineno}",
            tuple(ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases),
        )
        for node in nodes_of(module, ast.ClassDef)
        if isinstance(node, ast.ClassDef) and node.bases
    )


def _handlers(facts: Facts) -> list[tuple[str, str]]:
    """(where, exception name) for every global exception handler registered."""
    return [found for m in facts.app_code for found in module_fact(m, _module_handlers)]


@extractor(when=_is_app_code)
def _module_handlers(module: Module) -> tuple[tuple[str, str], ...]:
    if not mentions(module, "exception_handler"):
        return ()
    found: list[tuple[str, str]] = []
    for node in nodes_of(module, ast.Call):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"exception_handler", "add_exception_handler"}
            and node.args
        ):
            name = ast.unparse(node.args[0]).rsplit(".", 1)[-1]
            found.append((f"{module.path}:{node.lineno}", name))
    return tuple(found)


def _bare_http_exceptions(facts: Facts) -> list[str]:
    return [where for m in facts.app_code for where in module_fact(m, _module_bare_raises)]


@extractor(when=_is_app_code)
def _module_bare_raises(module: Module) -> tuple[str, ...]:
    if not mentions(module, "HTTPException"):
        return ()
    found: list[str] = []
    for node in nodes_of(module, ast.Raise):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = module.qualified_name(node.exc.func) or ""
            if name.endswith("HTTPException") and name.startswith(("fastapi", "starlette")):
                found.append(f"{module.path}:{node.lineno}")
    return tuple(found)


def _error_handling(facts: Facts) -> tuple[Dimension, Signal]:
    handlers = _handlers(facts)
    exceptions = _exception_classes(facts)
    children: dict[str, list[str]] = {}
    for name, (_, bases) in exceptions.items():
        for base in bases:
            if base in exceptions:
                children.setdefault(base, []).append(name)
    hierarchy = max(children.items(), key=lambda item: (len(item[1]), item[0]), default=None)
    handled = {name for _, name in handlers}
    bare = _bare_http_exceptions(facts)
    hierarchy_text = (
        f"{hierarchy[0]} ({exceptions[hierarchy[0]][0]}) with {len(hierarchy[1])} subclasses"
        if hierarchy and len(hierarchy[1]) >= 2
        else None
    )
    base_handled = (
        f"handler for {hierarchy[0]} at "
        + next(where for where, name in handlers if name == hierarchy[0])
        if hierarchy and hierarchy[0] in handled
        else None
    )
    steps = [
        _step(
            "global exception handlers",
            f"{len(handlers)} registered (first at {handlers[0][0]})" if handlers else None,
            "no app.exception_handler / add_exception_handler",
        ),
        _step("an error hierarchy", hierarchy_text, "no project exception base with 2+ subclasses"),
        _step("the hierarchy has a global handler", base_handled, "no handler for the error base"),
        Step(
            "no bare HTTPException",
            not bare,
            f"{len(bare)} raise HTTPException (first at {bare[0]})" if bare else "none raised",
        ),
    ]
    dimension = _ladder("error handling", 15, steps)
    points = 2 if base_handled and len(bare) <= 3 else 1 if handlers or hierarchy_text else 0
    return dimension, Signal("error handling", points, tuple(steps))


# --- security ---------------------------------------------------------------------------

_SECURITY_SCHEMES = ("OAuth2PasswordBearer", "HTTPBearer", "APIKeyHeader", "OAuth2", "APIKey")
_RATE_LIMIT_PACKAGES = ("slowapi", "limits", "fastapi_limiter", "ratelimit", "pyrate_limiter")
_SCANNERS = ("pip-audit", "pip_audit", "safety check", "osv-scanner", "snyk", "trivy", "bandit")


def _auth(facts: Facts) -> tuple[str | None, list[str]]:
    """(how the app authenticates through DI, places that parse tokens by hand)."""
    via: str | None = None
    by_hand: list[str] = []
    for module in facts.app_code:
        for target in module.imports.values():
            if target.startswith("fastapi.security") and via is None:
                via = f"{target.rsplit('.', 1)[-1]} ({module.path})"
        by_hand.extend(module_fact(module, _tokens_by_hand))
    if via is None:
        used = facts.uses("fastapi_users", "authx", "fastapi_jwt_auth", "jwt", "jose", "authlib")
        if used is not None:
            via = used
    return via, by_hand


@extractor(when=_is_app_code)
def _tokens_by_hand(module: Module) -> tuple[str, ...]:
    """Where the module splits an Authorization header itself."""
    if not mentions(module, "Authorization", "authorization"):
        return ()
    return tuple(
        f"{module.path}:{node.lineno}"
        for node in nodes_of(module, ast.Call)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "split"
        and "authorization" in ast.unparse(node.func.value).lower()
    )


def _rbac(facts: Facts) -> str | None:
    for module in facts.app_code:
        if any(t.endswith("SecurityScopes") for t in module.imports.values()):
            return f"SecurityScopes ({module.path})"
        found = module_fact(module, _guard_function)
        if found is not None:
            return found
    return None


@extractor(when=_is_app_code)
def _guard_function(module: Module) -> str | None:
    """The module's first function named like a role or permission check."""
    for node in nodes_of(module, ast.FunctionDef, ast.AsyncFunctionDef):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and re.search(
            r"(require|check|has)_?(role|permission|scope|admin|superuser)|permission",
            node.name,
            re.IGNORECASE,
        ):
            return f"{node.name} ({module.path}:{node.lineno})"
    return None


def _ci_files(facts: Facts) -> list[str]:
    return facts.files(
        lambda p: (
            p.startswith((".github/workflows/", ".circleci/"))
            or p in {".gitlab-ci.yml", "azure-pipelines.yml", "Jenkinsfile", ".drone.yml"}
        )
    )


def _scanning(facts: Facts) -> str | None:
    for path in facts.files(lambda p: p.startswith(".github/") and "dependabot" in p):
        return path
    for path in facts.files(lambda p: p.rsplit("/", 1)[-1].startswith("renovate")):
        return path
    sources = [*_ci_files(facts), "pyproject.toml", "Makefile", ".pre-commit-config.yaml"]
    for path in sources:
        text = facts.project.read_text(path) or ""
        for scanner in _SCANNERS:
            if scanner in text:
                return f"{scanner} in {path}"
    return None


def _security(facts: Facts) -> tuple[Dimension, Signal]:
    via, by_hand = _auth(facts)
    errors = facts.codes("KA4", minimum=Severity.ERROR)
    rate = facts.uses(*_RATE_LIMIT_PACKAGES)
    if rate is None:
        for module in facts.app_code:
            if mentions(module, "RateLimit", "rate_limit", "ratelimit"):
                rate = f"rate limiting in {module.path}"
                break
    rbac = _rbac(facts)
    steps = [
        _step("authentication", via, "no fastapi.security scheme or JWT library in app code"),
        Step(
            "RBAC and rate limits",
            rbac is not None and rate is not None,
            f"roles: {rbac or 'none found'}; rate limits: {rate or 'none found'}",
        ),
        _step("dependency scanning", _scanning(facts), "no pip-audit/dependabot/renovate found"),
        Step(
            "no security errors",
            not errors,
            f"{len(errors)} error findings: {_summary(errors)}" if errors else "none",
        ),
    ]
    dimension = _ladder("security", 15, steps)
    auth_evidence = (
        Step("auth through dependencies", via is not None, via or "no auth dependency found"),
        Step(
            "no hand-parsed tokens",
            not by_hand,
            f"Authorization split by hand at {', '.join(by_hand[:3])}" if by_hand else "none",
        ),
    )
    points = 2 if via and not by_hand else 1 if via else 0
    return dimension, Signal("auth", points, auth_evidence)


# --- testing ----------------------------------------------------------------------------

_SAD_PATH = re.compile(r"status_code\s*==\s*4\d\d|HTTP_4\d\d|pytest\.raises")
_CONTRACT = ("schemathesis", "pact", "openapi_core", "openapi_spec_validator")


def _coverage_threshold(facts: Facts) -> str | None:
    report = facts.tool("coverage", "report")
    if isinstance(report, dict):
        value = report.get("fail_under")
        if isinstance(value, int | float) and value >= 80:
            return f"[tool.coverage.report] fail_under = {value}"
    for path in ("setup.cfg", ".coveragerc", "tox.ini", "pytest.ini", "pyproject.toml", "Makefile"):
        text = facts.project.read_text(path) or ""
        match = re.search(r"(?:fail[_-]under|--cov-fail-under)\s*[= ]\s*(\d+)", text)
        if match and int(match.group(1)) >= 80:
            return f"fail-under {match.group(1)} in {path}"
    for path in _ci_files(facts):
        match = re.search(r"--cov-fail-under[= ](\d+)", facts.project.read_text(path) or "")
        if match and int(match.group(1)) >= 80:
            return f"--cov-fail-under={match.group(1)} in {path}"
    return None


@extractor(when=is_test)
def _has_async_test(module: Module) -> bool:
    return any(node.name.startswith("test") for node in module.nodes(ast.AsyncFunctionDef))


def _testing(facts: Facts) -> tuple[Dimension, Signal]:
    tests = [m for m in facts.tests if m.path.rsplit("/", 1)[-1].startswith("test")]
    sad = next((m.path for m in tests if _SAD_PATH.search(m.text)), None)
    contract = None
    for module in facts.tests:
        for target in module.imports.values():
            if target.split(".")[0] in _CONTRACT:
                contract = f"{target.split('.')[0]} ({module.path})"
                break
        if contract:
            break
    coverage = _coverage_threshold(facts)
    steps = [
        _step("tests exist", f"{len(tests)} test files" if tests else None, "no test files"),
        _step("sad paths tested", f"4xx / raises asserted in {sad}" if sad else None, "none"),
        _step("coverage at 80%+ enforced", coverage, "no coverage fail_under >= 80"),
        _step("contract tests", contract, "no schemathesis/pact/OpenAPI validation in tests"),
    ]
    async_db = async_database_evidence(facts.project)
    mode = async_mode_configured(facts.project)
    async_tests = any(module_fact(m, _has_async_test) for m in tests)
    async_ok = async_tests if async_db is not None else True
    signal_steps = (
        steps[0],
        Step(
            "async tests for an async app",
            async_ok,
            ("async tests present" + (f", {mode}" if mode else ""))
            if async_tests
            else "app database is sync; sync tests fit"
            if async_db is None
            else "app database is async but no async def tests",
        ),
        steps[2],
    )
    points = 2 if tests and async_ok and coverage else 1 if tests else 0
    return _ladder("testing", 15, steps), Signal("testing", points, signal_steps)


# --- performance ------------------------------------------------------------------------


def _performance(facts: Facts) -> Dimension:
    routes = _routes(facts)
    async_routes = sum(route.is_async for route in routes)
    blocking = facts.codes("KA201", "KA202")
    lists = facts.codes("KA303", "KA302")
    pools = facts.codes("KA103")
    cache = facts.uses("cashews", "aiocache", "fastapi_cache", "cachetools", "redis")
    steps = [
        Step(
            "async handlers",
            bool(routes) and async_routes * 2 >= len(routes),
            f"{async_routes}/{len(routes)} routes are async def",
        ),
        Step(
            "no blocking calls in async code",
            not blocking,
            _summary(blocking) if blocking else "no KA201/KA202 findings",
        ),
        Step(
            "bounded lists and uploads, tuned pools",
            not (lists or pools),
            _summary([*lists, *pools]) if lists or pools else "no KA302/KA303/KA103 findings",
        ),
        _step("caching", cache, "no cache library (cashews, aiocache, fastapi-cache, redis)"),
    ]
    return _ladder("performance", 10, steps)


# --- observability ----------------------------------------------------------------------


def _prints(facts: Facts) -> list[str]:
    return [where for m in facts.app_code for where in module_fact(m, _module_prints)]


@extractor(when=_is_app_code)
def _module_prints(module: Module) -> tuple[str, ...]:
    if "/" not in module.path or not mentions(module, "print("):
        return ()  # a top-level script may print; the application may not
    if module.path.split("/")[0] in {"scripts", "bin", "tools", "examples", "docs"}:
        return ()
    return tuple(
        f"{module.path}:{node.lineno}"
        for node in nodes_of(module, ast.Call)
        if isinstance(node, ast.Call) and module.qualified_name(node.func) == "builtins.print"
    )


def _observability(facts: Facts) -> tuple[Dimension, Signal]:
    logging_ = facts.uses("logging", "structlog", "loguru")
    structured = facts.uses(
        "structlog", "loguru", "pythonjsonlogger", "json_log_formatter", "logfire"
    )
    tracing = facts.uses("opentelemetry", "sentry_sdk", "ddtrace", "logfire", "elasticapm")
    metrics = facts.uses(
        "prometheus_client", "prometheus_fastapi_instrumentator", "starlette_exporter"
    )
    prints = _prints(facts)
    steps = [
        _step("logging", logging_, "no logging in app code"),
        _step("structured logging", structured, "no structlog/loguru/JSON formatter"),
        _step("tracing", tracing, "no OpenTelemetry/Sentry/ddtrace"),
        Step(
            "metrics, no print()",
            metrics is not None and not prints,
            "; ".join(
                filter(
                    None,
                    [
                        metrics or "no Prometheus/OTel metrics",
                        f"print() at {', '.join(prints[:3])}" if prints else None,
                    ],
                )
            ),
        ),
    ]
    points = 2 if structured and tracing and not prints else 1 if structured or tracing else 0
    signal = Signal("observability", points, (steps[1], steps[2], steps[3]))
    return _ladder("observability", 10, steps), signal


# --- database ---------------------------------------------------------------------------


def _migrations(facts: Facts) -> str | None:
    for path in facts.project.other_files:
        if path.endswith("alembic.ini"):
            return path
    for module in facts.project.modules:
        if module.path.endswith("env.py") and mentions(module, "alembic"):
            return module.path
    return facts.uses("alembic", "aerich", "yoyo")


def _repository_layer(facts: Facts) -> str | None:
    pattern = re.compile(r"(^|/|_)(repository|repositories|repo|crud|dao)(\.py$|/|_)")
    for module in facts.app_code:
        if pattern.search(module.path):
            return module.path
        found = module_fact(module, _repository_class)
        if found is not None:
            return found
    return None


@extractor(when=_is_app_code)
def _repository_class(module: Module) -> str | None:
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Repository"):
            return f"{node.name} ({module.path}:{node.lineno})"
    return None


_POOL_KEYS = frozenset(
    {"pool_size", "max_overflow", "pool_pre_ping", "pool_recycle", "min_size", "max_size"}
)


def _pool_tuning(facts: Facts) -> str | None:
    """Pool settings passed to an engine or pool: as keywords, or as the keys of the
    options dict that is splatted into it (`options["pool_size"] = ...`)."""
    for module in facts.app_code:
        found = module_fact(module, _module_pool_setting)
        if found is not None:
            return found
    return None


@extractor(when=_is_app_code)
def _module_pool_setting(module: Module) -> str | None:
    if not mentions(module, *_POOL_KEYS):
        return None
    for node in nodes_of(module, ast.keyword, ast.Dict, ast.Subscript):
        if isinstance(node, ast.keyword) and node.arg in _POOL_KEYS:
            return f"{node.arg} in {module.path}:{node.value.lineno}"
        keys: list[ast.expr | None] = []
        if isinstance(node, ast.Dict):
            keys = list(node.keys)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            keys = [node.slice]
        for key in keys:
            if isinstance(key, ast.Constant) and key.value in _POOL_KEYS:
                return f"{key.value} in {module.path}:{key.lineno}"
    return None


def _database(facts: Facts) -> tuple[Dimension, Signal]:
    orm = facts.uses("sqlalchemy", "sqlmodel", "tortoise", "beanie", "odmantic", "piccolo")
    migrations = _migrations(facts)
    async_db = async_database_evidence(facts.project)
    pool_findings = facts.codes("KA103")
    pools = _pool_tuning(facts)
    raw_sql = facts.codes("KA501")
    steps = [
        Step(
            "an ORM, no SQL built by formatting",
            orm is not None and not raw_sql,
            f"{_summary(raw_sql)}" if raw_sql else f"ORM: {orm or 'none (raw SQL or no database)'}",
        ),
        _step("migrations", migrations, "no alembic.ini / migrations env.py"),
        _step("a repository layer", _repository_layer(facts), "no repository/crud modules"),
        Step(
            "pool tuning",
            pools is not None and not pool_findings,
            _summary(pool_findings) if pool_findings else pools or "no pool settings found",
        ),
    ]
    signal_steps = (
        Step(
            "async database access",
            async_db is not None,
            f"{async_db[0].path}:{async_db[1]}" if async_db else "no async engine/driver",
        ),
        steps[1],
    )
    points = (async_db is not None) + (migrations is not None)
    return _ladder("database", 10, steps), Signal("database", points, signal_steps)


# --- deployment -------------------------------------------------------------------------


def _dockerfiles(facts: Facts) -> list[str]:
    return facts.files(
        lambda p: p.rsplit("/", 1)[-1].lower().startswith(("dockerfile", "containerfile"))
    )


def _rollback(facts: Facts) -> str | None:
    for module in facts.project.modules:
        if _is_migration(module) and module_fact(module, _real_downgrade):
            return f"migrations with downgrade() ({module.path})"
    docs = facts.files(lambda p: p.endswith((".md", ".rst", ".yml", ".yaml")))
    for path in docs:
        if re.search(r"\brollback\b|\broll back\b", facts.project.read_text(path) or "", re.I):
            return f"rollback documented in {path}"
    return None


@extractor(when=_is_migration)
def _real_downgrade(module: Module) -> bool:
    """A migration whose `downgrade()` does more than `pass` or hold a docstring."""
    return any(
        isinstance(node, ast.FunctionDef)
        and node.name == "downgrade"
        and any(
            not isinstance(s, ast.Pass)
            and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
            for s in node.body
        )
        for node in module.tree.body
    )


def _deployment(facts: Facts) -> tuple[Dimension, Signal]:
    dockerfiles = _dockerfiles(facts)
    text = facts.text_of(dockerfiles)
    stages = len(re.findall(r"^\s*FROM\s", text, re.MULTILINE | re.IGNORECASE))
    docker_health = re.search(r"^\s*HEALTHCHECK\s", text, re.MULTILINE | re.IGNORECASE)
    route = health_route(facts.project)
    ci = _ci_files(facts)
    health = (
        "HEALTHCHECK in " + dockerfiles[0]
        if docker_health
        else f"health route {route}"
        if route
        else None
    )
    steps = [
        _step("a Dockerfile", ", ".join(dockerfiles[:2]) or None, "no Dockerfile"),
        _step(
            "CI", ", ".join(ci[:2]) or None, "no CI workflow (.github/workflows, .gitlab-ci.yml)"
        ),
        _step("health checks", health, "no HEALTHCHECK and no health route"),
        _step("a rollback path", _rollback(facts), "no downgrade migrations or rollback docs"),
    ]
    signal_steps = (
        Step("multi-stage Dockerfile", stages >= 2, f"{stages} FROM stages" if text else "none"),
        Step(
            "container health check",
            docker_health is not None,
            f"HEALTHCHECK in {dockerfiles[0]}" if docker_health else "no HEALTHCHECK",
        ),
    )
    points = (stages >= 2) + (docker_health is not None)
    return _ladder("deployment", 10, steps), Signal("deployment", points, signal_steps)


# --- documentation (health only) --------------------------------------------------------


@extractor(when=_is_app_code)
def _described_apps(module: Module) -> tuple[str, ...]:
    """The module's `FastAPI(...)` calls given a title and description (or settings)."""
    customised: list[str] = []
    for node in nodes_of(module, ast.Call):
        if isinstance(node, ast.Call) and module.qualified_name(node.func) == "fastapi.FastAPI":
            keys = {k.arg or "" for k in node.keywords} & {"title", "description", "version"}
            if {"title", "description"} <= keys or any(k.arg is None for k in node.keywords):
                customised.append(f"FastAPI({', '.join(sorted(keys)) or '**settings'}) at "
                                  f"{module.path}:{node.lineno}")  # fmt: skip
    return tuple(customised)


def _documentation(facts: Facts) -> Signal:
    customised = [found for m in facts.app_code for found in module_fact(m, _described_apps)]
    routes = _routes(facts)
    documented = sum(route.documented for route in routes)
    total, typed, _ = _route_typing(facts)
    share_ok = bool(routes) and documented * 2 >= len(routes) and typed * 2 >= total
    evidence = (
        Step(
            "OpenAPI title and description",
            bool(customised),
            customised[0] if customised else "FastAPI() without title and description",
        ),
        Step(
            "routes described, responses declared",
            share_ok,
            f"{documented}/{len(routes)} routes have a summary or docstring; "
            f"{typed}/{total} declare a response model",
        ),
    )
    return Signal("documentation", bool(customised) + share_ok, evidence)


# --- entry point ------------------------------------------------------------------------


def score(project: Project, findings: Sequence[Finding]) -> ScoreReport:
    facts = Facts(project, findings)
    types = _type_safety(facts)
    total, typed, dict_bodies = _route_typing(facts)
    type_signal = Signal(
        "type safety",
        2 if total and typed / total >= 0.8 and not dict_bodies else 1 if typed else 0,
        (
            Step("responses declared", bool(total) and typed / total >= 0.8, f"{typed}/{total}"),
            Step(
                "no dict bodies",
                not dict_bodies,
                ", ".join(dict_bodies[:3]) if dict_bodies else "none",
            ),
        ),
    )
    errors, error_signal = _error_handling(facts)
    testing, testing_signal = _testing(facts)
    security, auth_signal = _security(facts)
    observability, observability_signal = _observability(facts)
    database, database_signal = _database(facts)
    deployment, deployment_signal = _deployment(facts)
    dimensions = [
        types,
        errors,
        testing,
        security,
        _performance(facts),
        observability,
        database,
        deployment,
    ]
    signals = [
        type_signal,
        error_signal,
        auth_signal,
        testing_signal,
        database_signal,
        observability_signal,
        deployment_signal,
        _documentation(facts),
    ]
    return ScoreReport(dimensions, signals)
