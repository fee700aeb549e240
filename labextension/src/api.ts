/**
 * The REST contract of the kfnb server extension, mirrored from `server_ext/handlers.py`.
 *
 * Every route lives under `<base_url>/kfnb/api/`. Successful responses are JSON bodies typed
 * below; errors are JSON bodies `{code, message}` (see `IErrorBody`) with status 400/404/409/500.
 * Keep this file and the Python handlers in step: the handshake (`API_VERSION`) fails loudly
 * when they drift apart.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { version as packageVersion } from '../../package.json';

/** Version of the REST contract this frontend speaks (`api` in `GET /kfnb/api/version`). */
export const API_VERSION = 1;

/** Version of this frontend bundle (npm form, e.g. `0.1.0` or `0.2.0-alpha.1`). */
export const FRONTEND_VERSION: string = packageVersion;

/** `GET /kfnb/api/version` */
export interface IVersionInfo {
  /** Version of the installed `kfnb` Python package (PEP 440 form). */
  version: string;
  /** Version of the REST contract the server speaks. */
  api: number;
}

/** Body of every error response. */
export interface IErrorBody {
  code: number;
  message: string;
}

/** An error response of the kfnb server extension. */
export class KfnbApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'KfnbApiError';
  }
}

/**
 * Call a kfnb REST endpoint and return its parsed JSON body.
 *
 * @param endPoint path below `kfnb/api/`, e.g. `version`
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'kfnb', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  if (!response.ok) {
    const message =
      (body as Partial<IErrorBody> | undefined)?.message ??
      `${response.status} ${response.statusText}`;
    throw new KfnbApiError(response.status, message);
  }
  return body as T;
}

/** `GET /kfnb/api/version`: the server's package version and REST contract version. */
export function getVersion(): Promise<IVersionInfo> {
  return requestAPI<IVersionInfo>('version');
}

/** One entry of `GET /kfnb/api/pool`: a pool of fresh kernels the server keeps ready. */
export interface IKernelPool {
  kernel_name: string;
  /** Kernels kept ready when idle. */
  size: number;
  /** Fresh kernels waiting for a step. */
  ready: number;
  starting: number;
  demand: number;
  live: number;
  /** Kernels started since the server began. */
  started: number;
  /** Whether kernels are forked from a pre-imported server. */
  fork_server: boolean;
  preload: string[];
}

/** `GET /kfnb/api/pool`: the server's warm kernel pools. */
export function getPools(): Promise<IKernelPool[]> {
  return requestAPI<IKernelPool[]>('pool');
}

/**
 * Normalise an npm (semver) or Python (PEP 440) version string to one comparable form,
 * following hatch-nodejs-version's mapping: `1.2.3-alpha.1` (npm) == `1.2.3a1` (Python).
 */
export function normalizeVersion(version: string): string {
  const match =
    /^v?(\d+)\.(\d+)\.(\d+)(?:[-_.]?(alpha|beta|preview|pre|rc|a|b|c)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?(?:\+(.+))?$/i.exec(
      version.trim()
    );
  if (!match) {
    return version.trim().toLowerCase();
  }
  const [, major, minor, patch, preLabel, preN, dev, devN, local] = match;
  const labels: Record<string, string> = {
    alpha: 'a',
    a: 'a',
    beta: 'b',
    b: 'b',
    c: 'rc',
    rc: 'rc',
    pre: 'rc',
    preview: 'rc'
  };
  let result = `${Number(major)}.${Number(minor)}.${Number(patch)}`;
  if (preLabel) {
    result += `${labels[preLabel.toLowerCase()]}${Number(preN || 0)}`;
  }
  if (dev) {
    result += `.dev${Number(devN || 0)}`;
  }
  if (local) {
    result += `+${local.toLowerCase()}`;
  }
  return result;
}

/**
 * The handshake: a list of human-readable problems when this frontend and the server do not
 * belong together (empty when they match).
 */
export function handshakeProblems(server: IVersionInfo): string[] {
  const problems: string[] = [];
  if (normalizeVersion(server.version) !== normalizeVersion(FRONTEND_VERSION)) {
    problems.push(
      `The kfnb frontend is ${FRONTEND_VERSION} but the server runs kfnb ${server.version}. ` +
        'Reinstall kfnb in the environment that runs Jupyter and restart it, then reload this page.'
    );
  }
  if (server.api !== API_VERSION) {
    problems.push(
      `The kfnb server speaks REST API ${server.api}; this frontend expects ${API_VERSION}.`
    );
  }
  return problems;
}
