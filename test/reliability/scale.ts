// Sizes of the reliability tests. `npm test` runs the short version of each;
// `npm run test:stress` (scripts/stress.js) sets RUSTLS_NODE_STRESS=1 for the
// full sizes the issue asks for, and RUSTLS_NODE_RESULTS_DIR so that every
// test leaves its figures there for the report.
import fs from 'node:fs'
import path from 'node:path'

/** True in the stress run. */
export const STRESS = process.env.RUSTLS_NODE_STRESS === '1'

export interface Scale {
  /** Mutated inputs fed through the native pump (item 1). */
  fuzzInputs: number
  /** Connections made one after another: handshake, 1 KiB each way, close (item 3). */
  sequentialConnections: number
  /** Handshaken connections held open at once, then closed (item 3). */
  idleConnections: number
  /** Silent, partial and dripping clients held at once (item 4). */
  slowClients: number
  /** handshakeTimeout given to the server under slow clients, ms (item 4). */
  slowHandshakeTimeoutMs: number
  /** How long a slow reader / stalled backend is kept going, ms (item 5). */
  backpressureMs: number
  /** Bytes the backend offers (download) or the client tries to upload (item 5). */
  backpressureBytes: number
  /** Parallel connections in each backpressure scenario (item 5). */
  backpressureConnections: number
  /** Seconds of SIGHUP-every-second under load (item 7). */
  reloadSeconds: number
  /** testssl run: 'short' (protocols, ciphers, vulnerabilities, server order) or 'full'. */
  scanner: 'short' | 'full'
}

const FULL: Scale = STRESS
  ? {
      fuzzInputs: 1_000_000,
      sequentialConnections: 100_000,
      idleConnections: 10_000,
      slowClients: 1_000,
      slowHandshakeTimeoutMs: 5_000,
      backpressureMs: 20_000,
      backpressureBytes: 1 << 30,
      backpressureConnections: 8,
      reloadSeconds: 30,
      scanner: 'full',
    }
  : {
      fuzzInputs: 60_000,
      sequentialConnections: 1_500,
      idleConnections: 400,
      slowClients: 150,
      slowHandshakeTimeoutMs: 2_500,
      backpressureMs: 3_000,
      backpressureBytes: 1 << 30,
      backpressureConnections: 4,
      reloadSeconds: 5,
      scanner: 'short',
    }

/** RUSTLS_NODE_FUZZ_INPUTS overrides the fuzz size (scripts/memcheck.sh runs a few thousand under ASan). */
export const SCALE: Scale = process.env.RUSTLS_NODE_FUZZ_INPUTS !== undefined
  ? { ...FULL, fuzzInputs: Number(process.env.RUSTLS_NODE_FUZZ_INPUTS) }
  : FULL

/**
 * Records the figures of one test for the stress report: a JSON file per
 * test in RUSTLS_NODE_RESULTS_DIR (set by scripts/stress.js); nothing
 * outside the stress run.
 */
export function recordFigures (name: string, figures: Record<string, unknown>): void {
  const dir = process.env.RUSTLS_NODE_RESULTS_DIR
  if (dir === undefined || dir === '') return
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ name, stress: STRESS, ...figures }, null, 2) + '\n')
}

/** Resident set size of a process in bytes (Linux /proc), undefined once it is gone. */
export function rssOf (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Open file descriptors of a process (Linux /proc). */
export function fdsOf (pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

export const MiB = 1024 * 1024

export function mib (bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}
