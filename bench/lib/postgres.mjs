// A throwaway PostgreSQL server for benchmarks, started like the tests start theirs: initdb into a
// temp dir (trust auth, UTF8, C locale), pg_ctl on a free loopback port, stopped and deleted by
// stop(). Unlike the test server it keeps fsync on (closer to production), unless { fast: true }.

import { spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import pg from 'pg'

const BINARIES = ['initdb', 'pg_ctl', 'postgres']

function findBin() {
  const candidates = []
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'initdb'))) candidates.push(dirname(realpathSync(join(dir, 'initdb'))))
  }
  const root = '/usr/lib/postgresql'
  if (existsSync(root))
    for (const v of readdirSync(root).sort((a, b) => Number(b) - Number(a)))
      candidates.push(join(root, v, 'bin'))
  const dir = candidates.find((d) => BINARIES.every((b) => existsSync(join(d, b))))
  if (!dir) throw new Error('PostgreSQL binaries not found: install the `postgresql` package')
  return dir
}

/** initdb and postgres refuse to run as root: then they run as `postgres` (or `nobody`). */
function account() {
  if (process.getuid?.() !== 0) return undefined
  const passwd = readFileSync('/etc/passwd', 'utf8')
  for (const name of ['postgres', 'nobody']) {
    const [, , uid, gid] =
      passwd
        .split('\n')
        .find((l) => l.startsWith(`${name}:`))
        ?.split(':') ?? []
    if (uid) return { uid: Number(uid), gid: Number(gid) }
  }
  throw new Error('running as root without a postgres or nobody account')
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.once('error', reject)
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`)),
    )
  })
}

/** Starts a server; returns { url, createDatabase(), stop() }. */
export async function startPostgres({ fast = false } = {}) {
  const bin = findBin()
  const as = { ...(account() ?? {}), env: { ...process.env, LC_ALL: 'C', LANG: 'C' } }
  const root = mkdtempSync(join(tmpdir(), 'gh-bench-pg-'))
  if (as.uid !== undefined) chownSync(root, as.uid, as.gid)
  const data = join(root, 'data')
  await run(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    as,
  )
  const port = await freePort()
  const opts = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${data}`,
    '-c max_connections=200',
    ...(fast ? ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'] : []),
  ].join(' ')
  await run(
    join(bin, 'pg_ctl'),
    ['-D', data, '-l', join(root, 'server.log'), '-w', '-t', '60', '-o', opts, 'start'],
    as,
  )
  const stop = () => {
    spawnSync(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], { ...as, stdio: 'ignore' })
    rmSync(root, { recursive: true, force: true })
  }
  process.once('exit', stop)
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  return {
    url,
    async createDatabase(name) {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`)
      } finally {
        await c.end()
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    },
    stop() {
      process.removeListener('exit', stop)
      stop()
    },
  }
}
