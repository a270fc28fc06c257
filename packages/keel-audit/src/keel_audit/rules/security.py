"""Security rules: CORS, secrets in source, JWT verification, python-jose."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import ClassVar

from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.rules._web import (
    field_value,
    is_sample,
    kwarg,
    literal,
    mentions,
    nodes_of,
    settings_default,
    walk_body,
)
from keel_audit.rules.base import Rule
from keel_audit.source import Module, Project

# --- KA401 -----------------------------------------------------------------------------

_CORS = frozenset(
    {"fastapi.middleware.cors.CORSMiddleware", "starlette.middleware.cors.CORSMiddleware"}
)
_WILDCARD_REGEXES = frozenset({".*", ".+", "^.*$", "^.+$", "https?://.*", "https://.*", "http.*"})


def _is_cors(module: Module, expr: ast.expr) -> bool:
    name = module.qualified_name(expr)
    if name in _CORS:
        return True
    return isinstance(expr, ast.Name) and expr.id == "CORSMiddleware" and name is None


class _Resolved:
    """A value that is a wildcard, with the place that makes it one."""

    def __init__(self, module: Module, node: ast.AST, how: str) -> None:
        self.module = module
        self.node = node
        self.how = how


def _module_constant(module: Module, name: str) -> ast.expr | None:
    for node in module.tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    return node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            return node.value
    return None


def _contains_star(value: object) -> bool:
    if value == "*":
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return any(item == "*" for item in value)
    return False


def _wildcard_origins(project: Project, module: Module, expr: ast.expr) -> _Resolved | None:
    """Does `allow_origins=<expr>` allow every origin? Literals, module constants and
    settings fields (`settings.ORIGINS` whose only defaults contain "*") are followed."""
    if _contains_star(literal(expr)):
        return _Resolved(module, expr, f"`{ast.unparse(expr)}`")
    if isinstance(expr, ast.List | ast.Tuple | ast.Set) and len(expr.elts) == 1:
        return _wildcard_origins(project, module, expr.elts[0])
    if isinstance(expr, ast.ListComp | ast.GeneratorExp) and len(expr.generators) == 1:
        return _wildcard_origins(project, module, expr.generators[0].iter)
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id in {"list", "tuple", "set", "str"}
        and len(expr.args) == 1
    ):
        return _wildcard_origins(project, module, expr.args[0])
    if isinstance(expr, ast.Name):
        value = _module_constant(module, expr.id)
        if value is not None and _contains_star(literal(value)):
            return _Resolved(module, value, f"{expr.id} = {ast.unparse(value)}")
        return None
    if isinstance(expr, ast.Attribute):
        definitions = settings_default(project, expr.attr)
        if not definitions:
            return None
        starred = []
        for def_module, node in definitions:
            value = field_value(node)
            if value is None:
                return None
            if _contains_star(literal(value)):
                starred.append((def_module, node))
            else:
                return None  # some class (e.g. the production settings) overrides it
        if starred:
            def_module, node = starred[0]
            return _Resolved(
                def_module,
                node,
                f"{ast.unparse(expr)} defaults to {ast.unparse(field_value(node) or node)} "
                f"({def_module.path}:{node.lineno})",
            )
    return None


def _truthy(project: Project, module: Module, expr: ast.expr | None) -> bool:
    if expr is None:
        return False
    value = literal(expr)
    if value is not NotImplemented:
        return bool(value)
    if isinstance(expr, ast.Attribute):
        definitions = settings_default(project, expr.attr)
        values = [literal(field_value(node)) for _, node in definitions]
        return bool(values) and all(v is True for v in values)
    if isinstance(expr, ast.Name):
        constant = _module_constant(module, expr.id)
        return constant is not None and literal(constant) is True
    return False


class CorsWildcardCredentials(Rule):
    code: ClassVar[str] = "KA401"
    name: ClassVar[str] = "cors-wildcard-credentials"
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str] = "CORS allows every origin together with credentials"
    reads_other_modules: ClassVar[bool] = True  # settings classes anywhere in the project
    why: ClassVar[str] = (
        'With `allow_origins=["*"]` (or a regex matching everything) and '
        "`allow_credentials=True`, Starlette answers a credentialed request by echoing the "
        "caller's Origin back with `Access-Control-Allow-Credentials: true`. Any web page "
        "the user visits can then call the API with the user's cookies and read the "
        'response: account data, CSRF tokens, everything. A settings default of "*" does '
        "the same wherever the environment forgot to set the list."
    )
    fix: ClassVar[str] = (
        "List the exact origins that may send credentials (from settings, with no wildcard "
        "default), or keep `*` and set `allow_credentials=False` for a public token-only "
        "API."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or not mentions(module, "CORSMiddleware"):
            return
        for node in nodes_of(module, ast.Call):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if not _is_cors(module, node.args[0]):
                continue
            if not _truthy(project, module, kwarg(node, "allow_credentials")):
                continue
            origins = kwarg(node, "allow_origins")
            resolved = _wildcard_origins(project, module, origins) if origins is not None else None
            regex = kwarg(node, "allow_origin_regex")
            if resolved is None and regex is not None and literal(regex) in _WILDCARD_REGEXES:
                resolved = _Resolved(module, regex, f"allow_origin_regex={ast.unparse(regex)}")
            if resolved is None:
                continue
            chain: tuple[Step, ...] = ()
            if resolved.module is not module or resolved.node is not origins:
                chain = (
                    Step(Location(module.path, node.lineno, node.col_offset), "CORSMiddleware"),
                    Step(
                        Location(
                            resolved.module.path,
                            getattr(resolved.node, "lineno", 1),
                            getattr(resolved.node, "col_offset", 0),
                        ),
                        "wildcard origin",
                    ),
                )
            yield self.finding(
                module,
                node,
                f"CORSMiddleware allows every origin ({resolved.how}) with allow_credentials=True",
                chain,
            )


# --- KA402 / KA405 ---------------------------------------------------------------------

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:secret|secret_key|jwt_secret|password|passwd|pwd|api_key|apikey|"
    r"access_key|secret_access_key|private_key|signing_key|encryption_key|auth_token|"
    r"access_token|api_token|bot_token|client_secret|token)$",
    re.IGNORECASE,
)
# Our own signing/encryption secrets: a known default lets anyone forge tokens or cookies.
_SIGNING_NAME = re.compile(
    r"(?:^|_)(?:secret|secret_key|jwt_secret|signing_key|encryption_key|session_secret)$",
    re.IGNORECASE,
)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_.:-]*$")
_MASK_CHARS = frozenset("*xX•#.-_ ")
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_SETTINGS_BASES = frozenset({"BaseSettings", "Settings", "BaseAppSettings", "AppSettings"})
_ENUM_BASES = frozenset({"Enum", "StrEnum", "IntEnum", "TextChoices", "Flag"})


def _looks_like_secret_value(name: str, value: object) -> bool:
    if not isinstance(value, str) or len(value) < 6:
        return False
    stripped = value.strip()
    if not stripped or stripped != value:
        return False
    if value.lower() == name.lower() or (
        _SNAKE.match(value) and value.endswith("_" + name.lower())
    ):
        return False  # an enum value, a key name, a field label ("polar_client_secret")
    if set(value) <= _MASK_CHARS:
        return False  # a mask shown instead of the value ("******")
    if _ENV_NAME.match(value):
        return False  # the name of an environment variable
    if "{" in value or value.startswith(("$", "<", "%")):
        return False  # a template or a reference (${VAR}, <your key>)
    # "organization_access_tokens:read": a scope or a type name, not a token.
    return not (name.lower().endswith("token") and _IDENTIFIER.match(value))


def _class_bases(node: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


class HardCodedSecret(Rule):
    code: ClassVar[str] = "KA402"
    name: ClassVar[str] = "hard-coded-secret"
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str] = "A secret (JWT key, password, API key) is a literal in the source"
    why: ClassVar[str] = (
        "A secret in the source is in every clone, every CI log that prints it, every "
        "container image and the git history forever; rotating it means a code change and a "
        "deploy. A JWT signing key in the repository lets anyone who has read the code mint "
        "valid tokens for any user."
    )
    fix: ClassVar[str] = (
        "Read it from the environment through the settings object (`SecretStr`, no default, "
        "so a missing value fails at startup), keep real values in the deployment's secret "
        "store, and rotate the one that was committed."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or is_sample(module):
            return
        settings_classes: set[int] = set()
        for node in nodes_of(module, ast.ClassDef):
            if isinstance(node, ast.ClassDef):
                bases = _class_bases(node)
                if (
                    bases & _ENUM_BASES
                    or bases & _SETTINGS_BASES
                    or node.name.endswith(("Settings", "Config"))
                ):
                    settings_classes.update(id(stmt) for stmt in node.body)
        for node in nodes_of(module, ast.Assign, ast.AnnAssign, ast.Call):
            if id(node) in settings_classes:
                continue  # settings defaults are KA405's, enum members are names
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    name = (
                        target.id
                        if isinstance(target, ast.Name)
                        else target.attr
                        if isinstance(target, ast.Attribute)
                        else None
                    )
                    if name and _SECRET_NAME.search(name) and node.value is not None:
                        value = literal(node.value)
                        if _looks_like_secret_value(name, value):
                            yield self.finding(module, node, f"{name} is assigned a literal secret")
            elif isinstance(node, ast.Call):
                yield from self._call_secrets(module, node)

    def _call_secrets(self, module: Module, call: ast.Call) -> Iterator[Finding]:
        for keyword in call.keywords:
            if keyword.arg and _SECRET_NAME.search(keyword.arg):
                value = literal(keyword.value)
                if _looks_like_secret_value(keyword.arg, value):
                    yield self.finding(
                        module,
                        keyword.value,
                        f"{ast.unparse(call.func)}({keyword.arg}=...) is passed a literal secret",
                    )
        target = module.qualified_name(call.func) or ""
        if (
            target in {"jwt.encode", "jwt.decode", "jose.jwt.encode", "jose.jwt.decode"}
            and len(call.args) >= 2
            and _looks_like_secret_value("key", literal(call.args[1]))
        ):
            yield self.finding(module, call.args[1], f"{target} is given a literal signing key")


class SecretSettingDefault(Rule):
    code: ClassVar[str] = "KA405"
    name: ClassVar[str] = "secret-setting-default"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = (
        "A signing/encryption secret in the settings has a usable default and nothing rejects it"
    )
    why: ClassVar[str] = (
        'A settings field such as `SECRET: str = "super secret"` is read from the '
        "environment, but when a deployment forgets the variable the service starts anyway, "
        "signing sessions and JWTs with a key that is printed in the repository. Nothing "
        "fails, nothing logs; the tokens are forgeable until someone notices."
    )
    fix: ClassVar[str] = (
        "Give the field no default (`SECRET: SecretStr`) so startup fails without it, or "
        "keep a development default and reject it outside development in a "
        "`@model_validator` that names the field."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or is_sample(module):
            return
        for node in nodes_of(module, ast.ClassDef):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = _class_bases(node)
            if not (bases & _SETTINGS_BASES or node.name.endswith("Settings")):
                continue
            guarded = self._guarded_names(node)
            for stmt in node.body:
                if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                    continue
                name = stmt.target.id
                if not _SIGNING_NAME.search(name) or name in guarded:
                    continue
                value = field_value(stmt)
                secret = literal(value)
                if isinstance(secret, str) and _looks_like_secret_value(name, secret):
                    yield self.finding(
                        module,
                        stmt,
                        f"{node.name}.{name} defaults to a literal ({secret[:4]}…) and no "
                        "validator rejects it",
                    )

    @staticmethod
    def _guarded_names(node: ast.ClassDef) -> set[str]:
        """Field names that a validator (any decorated method) mentions."""
        names: set[str] = set()
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.decorator_list:
                for inner in ast.walk(stmt):
                    if isinstance(inner, ast.Attribute):
                        names.add(inner.attr)
                    elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                        names.add(inner.value)
        return names


# --- KA403 / KA404 ---------------------------------------------------------------------

_DECODERS = frozenset({"jwt.decode", "jwt.api_jwt.decode", "jose.jwt.decode", "jwt.PyJWT.decode"})


def _option_off(options: ast.expr | None, key: str) -> bool:
    value = literal(options)
    if isinstance(value, dict):
        return value.get(key) is False
    if isinstance(options, ast.Dict):
        for k, v in zip(options.keys, options.values, strict=True):
            if literal(k) == key and literal(v) is False:
                return True
    return False


def _algorithm_from_token(expr: ast.expr | None) -> bool:
    """`algorithms=[header["alg"]]`: the token chooses how it is verified."""
    if expr is None:
        return False
    for node in ast.walk(expr):
        if isinstance(node, ast.Subscript) and literal(node.slice) == "alg":
            return True
    return False


class JwtUnverified(Rule):
    code: ClassVar[str] = "KA403"
    name: ClassVar[str] = "jwt-unverified"
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str] = (
        "A JWT is decoded without pinned algorithms or with verification disabled"
    )
    why: ClassVar[str] = (
        "A token is only as trustworthy as its verification. With signature verification "
        'off, any client can write its own claims (`"sub": "admin"`). Without a pinned '
        "`algorithms=[...]` (python-jose accepts whatever the header says) an attacker picks "
        "the algorithm: `none`, or HS256 keyed with your RSA public key. Taking the "
        "algorithm from the token's own header is the same mistake."
    )
    fix: ClassVar[str] = (
        "Decode with the key and a fixed list: `jwt.decode(token, key, "
        'algorithms=["HS256"])` (PyJWT), keep `verify_signature` on, and read the '
        "unverified header only to choose a key (`jwt.get_unverified_header`)."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or not mentions(module, "jwt", "jose"):
            return
        for node in nodes_of(module, ast.FunctionDef, ast.AsyncFunctionDef):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            decodes = [
                call
                for call in walk_body(node)
                if isinstance(call, ast.Call) and module.qualified_name(call.func) in _DECODERS
            ]
            verified = [c for c in decodes if self._problem(module, c) is None]
            for call in decodes:
                problem = self._problem(module, call)
                if problem is None:
                    continue
                if problem.startswith("verification") and verified:
                    continue  # peeking at claims, then verifying properly in the same place
                yield self.finding(
                    module, call, f"{module.qualified_name(call.func)}(...) {problem}"
                )

    @staticmethod
    def _problem(module: Module, call: ast.Call) -> str | None:
        target = module.qualified_name(call.func) or ""
        options = kwarg(call, "options")
        if _option_off(options, "verify_signature") or literal(kwarg(call, "verify")) is False:
            return "verification disabled (verify_signature=False)"
        algorithms = kwarg(call, "algorithms")
        if _algorithm_from_token(algorithms):
            return "takes the algorithm from the token header"
        if algorithms is None and len(call.args) < 3:
            if any(keyword.arg is None for keyword in call.keywords):
                return None  # **kwargs may carry algorithms
            if target.startswith("jose"):
                return "has no algorithms=[...]: python-jose then accepts the header's choice"
            return "has no algorithms=[...] (PyJWT refuses to verify without it)"
        return None


class PythonJose(Rule):
    code: ClassVar[str] = "KA404"
    name: ClassVar[str] = "python-jose"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "JWTs handled with python-jose (unmaintained, known CVEs)"
    why: ClassVar[str] = (
        "python-jose had no release between 2021 and 2024 and carries "
        "CVE-2024-33663 (algorithm confusion with ECDSA keys) and CVE-2024-33664 (a JWE "
        "decompression bomb); its `decode` accepts any algorithm unless told otherwise. "
        "FastAPI's own docs moved to PyJWT for this reason."
    )
    fix: ClassVar[str] = (
        "Use PyJWT (`jwt.decode(token, key, algorithms=[...])`) or joserfc/authlib for JWE "
        "and JWK sets, and drop python-jose from the dependencies."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or not mentions(module, "jose"):
            return
        for node in nodes_of(module, ast.Import, ast.ImportFrom):
            if isinstance(node, ast.Import) and any(
                a.name == "jose" or a.name.startswith("jose.") for a in node.names
            ):
                yield self.finding(module, node, "imports python-jose")
                return
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and (node.module == "jose" or node.module.startswith("jose."))
            ):
                yield self.finding(module, node, f"imports python-jose (from {node.module})")
                return


RULES: tuple[type[Rule], ...] = (
    CorsWildcardCredentials,
    HardCodedSecret,
    JwtUnverified,
    PythonJose,
    SecretSettingDefault,
)
