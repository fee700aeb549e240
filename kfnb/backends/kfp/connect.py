"""Where the Kubeflow Pipelines API is and how to authenticate: flags, environment, config file,
or the defaults of a Kubeflow notebook pod.

Resolution, first found wins, for each setting:

- host: ``--host`` / ``KfpConfig.host``, ``$KFNB_KFP_HOST``, ``$KF_PIPELINES_ENDPOINT`` (the
  SDK's own variable), ``kfp.host`` in the config file; inside a pod of the cluster (a Kubeflow
  notebook), KFP's in-cluster service;
- namespace (the Kubeflow profile): flag, ``$KFNB_KFP_NAMESPACE``, config; in a pod, the pod's
  own namespace; else none (a single-user deployment);
- credentials: a bearer token (flag, ``$KFNB_KFP_TOKEN``, config ``token``), else a session
  cookie such as ``authservice_session=...`` (``$KFNB_KFP_COOKIES``, config ``cookies``), else
  the service-account token Kubeflow mounts into notebook pods
  (``/var/run/secrets/kubeflow/pipelines/token``, or ``$KF_PIPELINES_SA_TOKEN_PATH``).

Every call to the API goes through ``calling(...)``, which turns connection and HTTP failures
into a ``KfpError`` naming the host, the namespace and what to check.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import KfnbError, MissingDependencyError

IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KfpError(KfnbError):
    """Kubeflow Pipelines could not be reached, refused a request, or reported a failure."""


@dataclass(frozen=True)
class Endpoint:
    """A resolved KFP API endpoint and the credentials to use there."""

    host: str
    namespace: str | None = None
    token: str | None = None
    cookies: str | None = None
    token_path: str | None = None  # a service-account token file, re-read as it rotates

    @property
    def where(self) -> str:
        return f"{self.host}" + (f" (namespace {self.namespace})" if self.namespace else "")

    @property
    def auth(self) -> str:
        if self.token:
            return "a bearer token"
        if self.cookies:
            return "a session cookie"
        if self.token_path:
            return f"the service-account token {self.token_path}"
        return "no credentials"


def resolve(
    host: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    cookies: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Endpoint:
    """The endpoint from the values given (the backend's config has already taken each from a
    flag, the environment or the config file), else the in-cluster defaults of a Kubeflow
    notebook pod, which ``env`` (the environment the settings were read from) reveals."""
    get = dict(env or {}).get
    host = host or None
    namespace = namespace or None
    token = token or None
    cookies = cookies or None
    token_path = get(SA_TOKEN_ENV) or SA_TOKEN_PATH
    in_pod = bool(get("KUBERNETES_SERVICE_HOST")) and Path(token_path).exists()
    if host is None:
        if not in_pod:
            raise KfpError(
                "no Kubeflow Pipelines host given",
                fix="pass --host URL (e.g. "
                "https://kubeflow.example.org/pipeline or http://localhost:8080 for a "
                "port-forward), set KFNB_KFP_HOST, or put `kfp: {host: URL}` in the kfnb "
                "config file; inside a Kubeflow notebook pod the in-cluster service is used",
            )
        host = IN_CLUSTER_HOST
    if namespace is None and in_pod and Path(POD_NAMESPACE_PATH).exists():
        namespace = Path(POD_NAMESPACE_PATH).read_text().strip() or None
    if not host.startswith(("http://", "https://")):
        raise KfpError(
            f"the Kubeflow Pipelines host {host!r} has no scheme",
            fix=f"write https://{host} (or http:// for a port-forward)",
        )
    use_sa = in_pod and not (token or cookies)
    return Endpoint(host.rstrip("/"), namespace, token, cookies, token_path if use_sa else None)


def probe(endpoint: Endpoint, timeout: float = 15.0) -> None:
    """Ask KFP's health endpoint once, so that a wrong URL or missing credentials fail at once
    with a clear error (``kfp.Client`` would retry a refused health check for 25 s)."""
    headers = {"Accept": "application/json"}
    token = endpoint.token
    if token is None and endpoint.token_path:
        token = Path(endpoint.token_path).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if endpoint.cookies:
        headers["Cookie"] = endpoint.cookies
    request = urllib.request.Request(f"{endpoint.host}/apis/v2beta1/healthz", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as err:
        detail = _message(err.read(), err.reason)
        raise _http_error(endpoint, "connect", err.code, detail) from err
    except (urllib.error.URLError, OSError) as err:
        raise _connect_error(endpoint, "connect", getattr(err, "reason", err)) from err


def client(endpoint: Endpoint) -> Any:
    """A ``kfp.Client`` for ``endpoint``, after a ``probe`` of the API."""
    probe(endpoint)
    try:
        import kfp
        from kfp.client import ServiceAccountTokenVolumeCredentials
    except ImportError as err:
        raise MissingDependencyError("kfp", "kfp", "submitting to Kubeflow Pipelines") from err
    credentials = (
        ServiceAccountTokenVolumeCredentials(endpoint.token_path) if endpoint.token_path else None
    )
    with warnings.catch_warnings(), calling(endpoint, "connect"):
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP 2.0.0-beta.2+"
        return kfp.Client(
            host=endpoint.host,
            namespace=endpoint.namespace or "kubeflow",
            existing_token=endpoint.token,
            cookies=endpoint.cookies,
            credentials=credentials,
        )


@contextlib.contextmanager
def calling(endpoint: Endpoint, action: str) -> Iterator[None]:
    """Turn what goes wrong talking to KFP into a ``KfpError`` that says what to check."""
    try:
        yield
    except KfnbError:
        raise
    except Exception as err:
        status = getattr(err, "status", None)
        if isinstance(status, int) and status:
            detail = _message(getattr(err, "body", None), getattr(err, "reason", None))
            raise _http_error(endpoint, action, status, detail) from err
        if _is_connection_error(err):
            raise _connect_error(endpoint, action, _first_line(err)) from err
        raise


def _connect_error(endpoint: Endpoint, action: str, reason: object) -> KfpError:
    what = "" if action == "connect" else f"cannot {action}: "
    return KfpError(
        f"{what}cannot connect to Kubeflow Pipelines at {endpoint.where}: {reason}",
        fix="check the URL and that the API is reachable from here (VPN, port-forward: kubectl "
        "port-forward -n kubeflow svc/ml-pipeline-ui 8080:80)",
    )


def _http_error(endpoint: Endpoint, action: str, status: int, detail: str) -> KfpError:
    base = f"cannot {action}: Kubeflow Pipelines at {endpoint.where} answered HTTP {status}"
    base += f": {detail}" if detail else ""
    if status == 401:
        return KfpError(
            base,
            fix="authenticate: pass a token (KFNB_KFP_TOKEN) or the "
            "session cookie of a logged-in browser (KFNB_KFP_COOKIES="
            f"'authservice_session=...'); sent: {endpoint.auth}",
        )
    if status == 403:
        return KfpError(
            base,
            fix="check that your profile may use namespace "
            f"{endpoint.namespace or '(none given)'} (pass --namespace) and that "
            f"the credentials are yours; sent: {endpoint.auth}",
        )
    if status == 404:
        return KfpError(
            base,
            fix="check the URL: it must point at the KFP API (often "
            "https://HOST/pipeline), and the run or experiment must exist there",
        )
    return KfpError(base, fix="see the message above; retry if the server was busy")


def _message(body: bytes | str | None, reason: object) -> str:
    """What the server said: the ``message`` of a googleRpcStatus body, else the reason."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not body:
        return str(reason or "")
    try:
        data = json.loads(body)
    except ValueError:
        return _first_line(body)[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:300]
    return ""


def _is_connection_error(err: BaseException) -> bool:
    try:
        import urllib3
    except ImportError:  # pragma: no cover - kfp depends on it
        return isinstance(err, OSError)
    return isinstance(err, (urllib3.exceptions.HTTPError, OSError))


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
