import { spawn, spawnSync, type SpawnOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach } from 'vitest'
import { openPgStore } from '../../src/store/pg/index.js'
import type { Store } from '../../src/store/types.js'

/**
 * A throwaway PostgreSQL server for tests: `initdb` into a temp dir (trust auth, UTF8, C locale,
 * no fsync), `pg_ctl start` on a free loopback port, stopped and deleted on `stop()`. A watchdog
 * process kills the server and removes its directory if the test process dies without stopping
 * it (even by SIGKILL), so no postgres is ever left behind.
 *
 * Missing binaries are an error, not a skip: the message says to install the `postgresql` package
 * (.ci/run installs it).
 */
export interface TestPostgres {
  /** URL of the `postgres` database as the superuser `postgres`. */
  url: string
  port: number
  /** A new empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>
  /**
   * Opens a Gatehouse store in a fresh schema of `url`'s database (cheap: one CREATE SCHEMA plus
   * the migrations); closing the store drops the schema.
   */
  openStore(url?: string): Promise<Store>
  stop(): Promise<void>
}

const BINARIES = ['initdb', 'pg_ctl', 'postgres'] as const

/**
 * The directory holding initdb, pg_ctl and postgres: PATH first (symlinks resolved, as Debian's
 * /usr/bin wrappers are not the server binaries), then the newest /usr/lib/postgresql/<version>/bin.
 */
export function findPostgresBin(
  path = process.env.PATH ?? '',
  roots: readonly string[] = ['/usr/lib/postgresql'],
): string {
  const candidates: string[] = []
  for (const dir of path.split(delimiter)) {
    if (!dir) continue
    const initdb = join(dir, 'initdb')
    if (existsSync(initdb)) candidates.push(dirname(realpathSync(initdb)))
  }
  for (const root of roots) {
    if (!existsSync(root)) continue
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    for (const v of versions) candidates.push(join(root, v, 'bin'))
  }
  for (const dir of candidates) if (BINARIES.every((b) => existsSync(join(dir, b)))) return dir
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in /usr/lib/postgresql/*/bin. ' +
      'These tests start a real PostgreSQL: install the `postgresql` package (e.g. `apt-get install -y postgresql`; .ci/run does this in CI).',
  )
}

/** initdb and postgres refuse to run as root: when we are root, they run as this account. */
function serverAccount(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const passwd = existsSync('/etc/passwd') ? readFileSync('/etc/passwd', 'utf8') : ''
  for (const name of ['postgres', 'nobody']) {
    const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`))
    const [, , uid, gid] = line?.split(':') ?? []
    if (uid && gid) return { uid: Number(uid), gid: Number(gid) }
  }
  throw new Error(
    'running as root, and neither a `postgres` nor a `nobody` account exists to run PostgreSQL as',
  )
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

function run(cmd: string, args: string[], opts: SpawnOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    child.once('error', reject)
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out}`)),
    )
  })
}

/** Starts one server. Call `stop()` in afterAll. */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin()
  const account = serverAccount()
  const root = mkdtempSync(join(tmpdir(), 'gh-pg-'))
  if (account) chownSync(root, account.uid, account.gid)
  const data = join(root, 'data')
  const log = join(root, 'server.log')
  const as: SpawnOptions = { ...(account ?? {}), env: { ...process.env, LC_ALL: 'C', LANG: 'C' } }

  // The watchdog: once this process is gone, stop the server immediately and delete its files.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done
       if [ -f "$1/postmaster.pid" ]; then kill -QUIT "$(head -n 1 "$1/postmaster.pid")" 2>/dev/null; sleep 1; fi
       rm -rf "$2"`,
      'pg-watchdog',
      data,
      root,
    ],
    { detached: true, stdio: 'ignore' },
  )
  watchdog.unref()

  let started = false
  const stopServer = () => {
    if (!started) return
    started = false
    spawnSync(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], {
      ...as,
      stdio: 'ignore',
    })
  }
  const cleanup = () => {
    stopServer()
    rmSync(root, { recursive: true, force: true })
    try {
      if (watchdog.pid) process.kill(watchdog.pid)
    } catch {
      // already gone
    }
  }
  process.once('exit', cleanup)

  let port = 0
  try {
    await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      as,
    )
    // A port can be taken between picking and binding: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort()
      const opts = [
        `-p ${port}`,
        `-c listen_addresses=127.0.0.1`,
        `-c unix_socket_directories=${data}`,
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=200',
        '-c shared_buffers=32MB',
      ].join(' ')
      try {
        await run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '60', '-o', opts, 'start'], as)
        started = true
        break
      } catch (err) {
        if (attempt >= 3) {
          const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''
          throw new Error(`${(err as Error).message}\nserver log:\n${tail}`)
        }
      }
    }
  } catch (err) {
    cleanup()
    process.removeListener('exit', cleanup)
    throw err
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  const admin = new pg.Pool({ connectionString: url, max: 2 })
  admin.on('error', () => {})

  return {
    url,
    port,
    async createDatabase(name = `db_${randomBytes(6).toString('hex')}`) {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`)
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    },
    async openStore(dbUrl = url) {
      const schema = `s_${randomBytes(6).toString('hex')}`
      const store = await openPgStore({ url: dbUrl, schema, poolSize: 4 })
      const close = store.close.bind(store)
      store.close = async () => {
        await close()
        const c = new pg.Client({ connectionString: dbUrl })
        await c.connect()
        try {
          await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        } finally {
          await c.end()
        }
      }
      return store
    },
    async stop() {
      await admin.end().catch(() => {})
      cleanup()
      process.removeListener('exit', cleanup)
    },
  }
}

export interface PostgresForTests {
  /** The server; throws the start-up error (e.g. missing binaries) when it did not start. */
  server(): TestPostgres
  /** URL of a database created for this test file. */
  url(): string
  /** Whether the server started (guard other beforeAll hooks with it). */
  ready(): boolean
}

/**
 * One server and one database for the calling test file. When the server cannot start, every
 * test of the file fails with that error (naming the missing `postgresql` package): a failing
 * beforeAll alone would only mark the tests skipped.
 */
export function usePostgres(): PostgresForTests {
  let server: TestPostgres | undefined
  let url = ''
  let error: Error | undefined
  beforeAll(async () => {
    try {
      server = await startPostgres()
      url = await server.createDatabase()
    } catch (err) {
      error = err as Error
    }
  }, 120_000)
  beforeEach(() => {
    if (error) throw error
  })
  afterAll(async () => {
    await server?.stop()
  })
  const started = (): TestPostgres => {
    if (!server || !url) throw error ?? new Error('PostgreSQL has not started yet')
    return server
  }
  return { server: started, url: () => (started(), url), ready: () => server !== undefined && url !== '' }
}
