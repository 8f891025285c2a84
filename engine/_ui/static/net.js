// Fetching the pages' data from /api/... (the JSON scripts get too).

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  let body;
  try { body = await r.json(); } catch (e) { throw new ApiError(`${path}: the server answered ${r.status} without JSON`, r.status); }
  if (!r.ok) throw new ApiError((body && body.error && body.error.message) || `${path}: HTTP ${r.status}`, r.status);
  return body;
}

// An id with slashes (d00/t003/g1) as a URL path, each part escaped.
export const enc = (id) => id.split("/").map(encodeURIComponent).join("/");
