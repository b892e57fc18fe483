// A separate process reserving from one budget counter in a shared SQLite file:
//   node --import tsx test/policy/reserve-worker.ts DB_PATH KEY LIMIT ATTEMPTS
// Prints how many reservations it won.
import { openSqliteStore } from '../../src/store/sqlite/index.js'

const [path, key, limit, attempts] = process.argv.slice(2)
const store = openSqliteStore({ path: path!, offThreadWrites: false, busyTimeoutMs: 10_000 })
let won = 0
for (let i = 0; i < Number(attempts); i++) {
  if ((await store.limits.reserve(key!, 'total', 1, Number(limit))).ok) won++
}
await store.close()
process.stdout.write(String(won))
