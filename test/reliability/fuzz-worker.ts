// Child process of fuzz-pump.test.ts: runs inputs [start, start+count) of
// run SEED against the native pump and reports over IPC. A separate process
// so that a crash (a signal) or a hang is observed by the parent, which then
// replays the batch with TRACE to name the input.
//
//   node dist/test/reliability/fuzz-worker.js CORPUS.json SEED START COUNT [TRACE_FILE]
//
// Without an IPC channel (run by hand) it prints its summary as JSON.
import fs from 'node:fs'

import { fixtures } from '../helpers/certs'
import { addon } from '../../lib/native'
import { FuzzFinding, loadCorpus, makeTargets, runInput, type CorpusFile, type Generated } from './fuzz'

export interface WorkerSummary {
  inputs: number
  byTarget: Record<string, number>
  /** Final error code → count (0: orderly close after close_notify). */
  codes: Record<string, number>
  handshakesCompleted: number
  plaintextDelivered: number
  maxMs: number
  findings: Array<{ index: number, message: string, inputHex: string }>
  /** RSS after a full collection, once 2000 inputs ran and at the end. */
  rssAfterWarmup: number
  rssEnd: number
  heapUsedAfterWarmup: number
  heapUsedEnd: number
  liveConnectionsEnd: number
}

export type WorkerMessage =
  | { type: 'progress', done: number }
  | { type: 'done', summary: WorkerSummary }

/**
 * Full garbage collections when run with --expose-gc (the parent does),
 * with turns of the event loop for the finalizers they schedule.
 */
async function collect (): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 3 && gc !== undefined; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function main (): Promise<void> {
  const [corpusPath, seedText, startText, countText, traceFile] = process.argv.slice(2)
  const corpus = loadCorpus(JSON.parse(fs.readFileSync(corpusPath, 'utf8')) as CorpusFile)
  const seed = Number(seedText)
  const start = Number(startText)
  const count = Number(countText)
  const targets = makeTargets(fixtures())
  const traceFd = traceFile === undefined ? undefined : fs.openSync(traceFile, 'w')
  const trace = traceFd === undefined
    ? undefined
    : (g: Generated): void => {
        // Written (and synced by the kernel's page cache) before the input
        // is fed: the last line names the input that crashed the process.
        fs.writeSync(traceFd, `${g.target} ${g.describe} ${g.input.toString('hex')}\n`)
      }
  const send = (m: WorkerMessage): void => {
    if (process.send !== undefined) process.send(m)
  }
  const summary: WorkerSummary = {
    inputs: 0, byTarget: {}, codes: {}, handshakesCompleted: 0, plaintextDelivered: 0, maxMs: 0, findings: [],
    rssAfterWarmup: 0, rssEnd: 0, heapUsedAfterWarmup: 0, heapUsedEnd: 0, liveConnectionsEnd: 0,
  }
  for (let i = start; i < start + count; i++) {
    if (traceFd !== undefined) fs.writeSync(traceFd, `#${i}\n`)
    try {
      const o = runInput(targets, corpus, seed, i, trace)
      summary.byTarget[o.target] = (summary.byTarget[o.target] ?? 0) + 1
      summary.codes[o.code] = (summary.codes[o.code] ?? 0) + 1
      if (o.handshakeDone) summary.handshakesCompleted++
      summary.plaintextDelivered += o.plain
      if (o.ms > summary.maxMs) summary.maxMs = o.ms
    } catch (err) {
      const input = err instanceof FuzzFinding ? err.input : Buffer.alloc(0)
      if (summary.findings.length < 20) summary.findings.push({ index: i, message: (err as Error).stack ?? String(err), inputHex: input.toString('hex').slice(0, 20_000) })
    }
    summary.inputs++
    if (summary.inputs === 2000) {
      await collect()
      summary.rssAfterWarmup = process.memoryUsage.rss()
      summary.heapUsedAfterWarmup = process.memoryUsage().heapUsed
    }
    if (summary.inputs % 1000 === 0) {
      send({ type: 'progress', done: summary.inputs })
      // A turn of the event loop: N-API finalizers of collected handles
      // run from it (not inside a synchronous loop), as in a real server.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  targets.release()
  await collect()
  summary.rssEnd = process.memoryUsage.rss()
  summary.heapUsedEnd = process.memoryUsage().heapUsed
  summary.liveConnectionsEnd = addon.liveHandles().connections
  if (traceFd !== undefined) fs.closeSync(traceFd)
  if (process.send !== undefined) {
    send({ type: 'done', summary })
    process.disconnect()
  } else {
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n')
  }
}

void main()
