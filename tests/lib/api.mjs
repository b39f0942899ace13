// A small JSON client for the Worker's API that returns status and parsed body.
export function client(base, headers = {}) {
  const call = async (method, path, body, extra = {}) => {
    const init = { method, headers: { ...headers, ...extra } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
    const r = await fetch(base + path, init);
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = { raw: text }; }
    return { status: r.status, body: json, data: json?.data, error: json?.error };
  };
  return {
    get: (p, extra) => call('GET', p, undefined, extra),
    post: (p, b = {}, extra) => call('POST', p, b, extra),
    patch: (p, b, extra) => call('PATCH', p, b, extra),
    del: (p, extra) => call('DELETE', p, undefined, extra),
    call,
    with: (more) => client(base, { ...headers, ...more }),
  };
}

/** Asserts a successful envelope and returns its data. */
export function ok(res, status = 200) {
  if (res.status !== status || res.body?.success !== true) {
    throw new Error(`expected ${status} success, got ${res.status}: ${JSON.stringify(res.body)}`);
  }
  return res.data;
}

/** Asserts an error envelope with `status` whose message contains `fragment`. */
export function fails(res, status, fragment = '') {
  if (res.status !== status || res.body?.success !== false || !String(res.error).includes(fragment)) {
    throw new Error(`expected ${status} error containing ${JSON.stringify(fragment)}, got ${res.status}: ${JSON.stringify(res.body)}`);
  }
  return res.error;
}
