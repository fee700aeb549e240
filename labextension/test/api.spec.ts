import { ServerConnection } from '@jupyterlab/services';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';

import contractText from '../../server_ext/openapi.yaml?raw';

import {
  API_VERSION,
  editCellStep,
  errorMessage,
  eventsUrl,
  FRONTEND_VERSION,
  handshakeProblems,
  isAbort,
  KfnbApiError,
  listRuns,
  normalizeVersion,
  requestAPI,
  startRun
} from '../src/api';
import { configurePage, TOKEN } from './server';

describe('API_VERSION', () => {
  it("is the contract's info.version", () => {
    const contract = parse(contractText);
    expect(API_VERSION).toBe(Number(contract.info.version));
  });
});

describe('normalizeVersion', () => {
  it.each([
    ['1.2.3', '1.2.3'],
    ['v1.2.3', '1.2.3'],
    ['01.02.03', '1.2.3'],
    ['1.2.3-alpha.1', '1.2.3a1'],
    ['1.2.3a1', '1.2.3a1'],
    ['1.2.3-beta.2', '1.2.3b2'],
    ['1.2.3-rc.0', '1.2.3rc0'],
    ['1.2.3c1', '1.2.3rc1'],
    ['1.2.3-pre.4', '1.2.3rc4'],
    ['1.2.3-preview.4', '1.2.3rc4'],
    ['1.2.3rc', '1.2.3rc0'],
    ['1.2.3.dev4', '1.2.3.dev4'],
    ['1.2.3-dev.4', '1.2.3.dev4'],
    ['1.2.3a1.dev2', '1.2.3a1.dev2'],
    ['1.2.3+Local.7', '1.2.3+local.7'],
    ['  1.2.3  ', '1.2.3'],
    ['Not A Version', 'not a version']
  ])('%s -> %s', (version, normal) => {
    expect(normalizeVersion(version)).toBe(normal);
  });

  it('makes the npm and the Python form of one version equal', () => {
    expect(normalizeVersion('0.2.0-alpha.1')).toBe(normalizeVersion('0.2.0a1'));
    expect(normalizeVersion('0.2.0-beta.1')).not.toBe(
      normalizeVersion('0.2.0a1')
    );
  });
});

describe('handshakeProblems', () => {
  it('has none when versions and contract match', () => {
    expect(
      handshakeProblems({ version: FRONTEND_VERSION, api: API_VERSION })
    ).toEqual([]);
  });

  it('accepts the Python form of the frontend version', () => {
    const python = FRONTEND_VERSION.replace(/-alpha\.(\d+)$/, 'a$1');
    expect(handshakeProblems({ version: python, api: API_VERSION })).toEqual(
      []
    );
  });

  it('names both versions when the packages differ', () => {
    const [problem, ...rest] = handshakeProblems({
      version: '99.0.0',
      api: API_VERSION
    });
    expect(rest).toEqual([]);
    expect(problem).toContain(`The kfnb frontend is ${FRONTEND_VERSION}`);
    expect(problem).toContain('the server runs kfnb 99.0.0');
  });

  it('names both contract versions when they differ', () => {
    expect(
      handshakeProblems({ version: FRONTEND_VERSION, api: API_VERSION + 1 })
    ).toEqual([
      `The kfnb server speaks REST API ${API_VERSION + 1}; this frontend expects ${API_VERSION}.`
    ]);
  });
});

describe('KfnbApiError', () => {
  it('reads as where, message and fix', () => {
    const error = new KfnbApiError(400, 'bad value.', 'pass an int', 'cell 3');
    expect(error.name).toBe('KfnbApiError');
    expect(error.text).toBe('cell 3: bad value. Fix: pass an int');
    expect(new KfnbApiError(404, 'no such run').text).toBe('no such run');
  });
});

describe('errorMessage', () => {
  it('reads every kind of error', () => {
    expect(
      errorMessage(new KfnbApiError(409, 'ended', 'start a new run'))
    ).toBe('ended. Fix: start a new run');
    expect(
      errorMessage(new ServerConnection.NetworkError(new TypeError('down')))
    ).toBe('the server is not reachable (down)');
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('text')).toBe('text');
    expect(errorMessage(undefined)).toBe('undefined');
  });
});

describe('isAbort', () => {
  it('tells aborted requests from failures', () => {
    expect(isAbort(new DOMException('stop', 'AbortError'))).toBe(true);
    expect(isAbort({ name: 'AbortError' })).toBe(true);
    expect(isAbort(new Error('boom'))).toBe(false);
    expect(isAbort(null)).toBe(false);
    expect(isAbort(undefined)).toBe(false);
  });
});

describe('requests', () => {
  let fetch: ReturnType<typeof vi.fn>;
  let answer: () => Response | Promise<Response>;

  function asked(): Request {
    return fetch.mock.calls[fetch.mock.calls.length - 1][0] as Request;
  }

  beforeEach(() => {
    configurePage();
    answer = () => new Response('{}', { status: 200 });
    fetch = vi.fn(async () => answer());
    vi.stubGlobal('fetch', fetch);
  });

  it('calls routes under kfnb/api with the token', async () => {
    answer = () => new Response(JSON.stringify({ runs: [], total: 0 }));
    const list = await listRuns({
      notebook: 'a b.ipynb',
      status: ['RUNNING', 'PENDING'],
      limit: 5
    });
    expect(list).toEqual({ runs: [], total: 0 });
    const url = new URL(asked().url);
    expect(url.pathname).toBe('/lab-base/kfnb/api/runs');
    expect(url.searchParams.get('notebook')).toBe('a b.ipynb');
    expect(url.searchParams.getAll('status')).toEqual(['RUNNING', 'PENDING']);
    expect(url.searchParams.get('limit')).toBe('5');
    expect(asked().headers.get('Authorization')).toBe(`token ${TOKEN}`);
  });

  it('posts JSON bodies', async () => {
    answer = () =>
      new Response(JSON.stringify({ index: 2, tags: ['step:a'], source: 'x' }));
    const edit = await editCellStep({
      path: 'nb.ipynb',
      notebook: { cells: [] },
      index: 2,
      step: { name: 'a', after: [], gpus: 0, image: null }
    });
    expect(edit.tags).toEqual(['step:a']);
    expect(asked().method).toBe('POST');
    expect(new URL(asked().url).pathname).toBe('/lab-base/kfnb/api/cells/step');
    expect(await asked().json()).toMatchObject({
      index: 2,
      step: { name: 'a' }
    });
  });

  it('sends parameter texts as param_strings', async () => {
    answer = () => new Response(JSON.stringify({ id: 'r1' }), { status: 201 });
    await startRun({
      path: 'nb.ipynb',
      param_strings: { sizes: '[1, 2]' },
      backend: 'local'
    });
    expect(await asked().json()).toEqual({
      path: 'nb.ipynb',
      param_strings: { sizes: '[1, 2]' },
      backend: 'local'
    });
  });

  it("throws the server's error with its fix and place", async () => {
    answer = () =>
      new Response(
        JSON.stringify({
          code: 400,
          message: "parameter 'n' is an int",
          fix: 'pass e.g. 7',
          where: 'nb.ipynb'
        }),
        { status: 400, statusText: 'Bad Request' }
      );
    const error = await requestAPI('runs').catch(e => e);
    expect(error).toBeInstanceOf(KfnbApiError);
    expect((error as KfnbApiError).status).toBe(400);
    expect(errorMessage(error)).toBe(
      "nb.ipynb: parameter 'n' is an int. Fix: pass e.g. 7"
    );
  });

  it('throws the status when the error body is not JSON', async () => {
    answer = () =>
      new Response('<html>oops</html>', {
        status: 502,
        statusText: 'Bad Gateway'
      });
    const error = await requestAPI('version').catch(e => e);
    expect(error).toBeInstanceOf(KfnbApiError);
    expect((error as KfnbApiError).text).toBe('502 Bad Gateway');
  });

  it('throws a network error when the server is down', async () => {
    answer = () => {
      throw new TypeError('fetch failed');
    };
    const error = await requestAPI('version').catch(e => e);
    expect(error).toBeInstanceOf(ServerConnection.NetworkError);
    expect(errorMessage(error)).toContain('the server is not reachable');
  });

  it('gives aborted requests back as aborts', async () => {
    const abort = new AbortController();
    abort.abort();
    answer = () => {
      throw new DOMException('aborted', 'AbortError');
    };
    const error = await requestAPI('version', { signal: abort.signal }).catch(
      e => e
    );
    expect(isAbort(error)).toBe(true);
  });

  it('builds the URL of the event stream', () => {
    expect(eventsUrl(42)).toBe(
      'http://localhost:8888/lab-base/kfnb/api/events?after=42'
    );
  });
});
