type Json = Record<string, any>

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Text if the bytes are valid UTF-8 without NUL bytes; otherwise undefined (binary). */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined
  try {
    return decoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** Projects the contents API answer: a directory listing, or one file decoded from base64. */
export function fileContents(data: unknown): Record<string, unknown> {
  if (Array.isArray(data)) {
    return {
      type: 'dir',
      entries: data.map((e: Json) => ({ name: e.name, path: e.path, type: e.type, size: e.size })),
    }
  }
  const f = data as Json
  const base = { type: f.type, path: f.path, sha: f.sha, size: f.size, html_url: f.html_url ?? null }
  if (f.type === 'symlink') return { ...base, target: f.target }
  if (f.type === 'submodule') return { ...base, submodule_git_url: f.submodule_git_url }
  if (f.encoding !== 'base64' || typeof f.content !== 'string') {
    return {
      ...base,
      content: null,
      note: 'File too large for the contents API (over 1 MB).',
      download_url: f.download_url ?? null,
    }
  }
  const text = asText(Buffer.from(f.content, 'base64'))
  if (text === undefined) {
    return {
      ...base,
      content: null,
      note: 'Binary file; content not returned.',
      download_url: f.download_url ?? null,
    }
  }
  return { ...base, encoding: 'utf-8', content: text }
}
