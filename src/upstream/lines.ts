/**
 * Splits a byte stream into lines without ever holding more than `maxBytes` of one line:
 * readline has no limit, so a child that never writes a newline could exhaust memory.
 */
export class LineSplitter {
  private parts: Buffer[] = []
  private size = 0

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, nl))
      if (this.size > this.maxBytes) return this.overflow()
      const line = (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size)).toString(
        'utf8',
      )
      this.parts = []
      this.size = 0
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line)
      start = nl + 1
    }
    this.append(chunk.subarray(start))
    if (this.size > this.maxBytes) this.overflow()
  }

  private append(b: Buffer): void {
    if (!b.length) return
    this.parts.push(b)
    this.size += b.length
  }

  private overflow(): void {
    this.parts = []
    this.size = 0
    this.onOverflow()
  }
}
