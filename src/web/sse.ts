/**
 * Server-Sent Events: the framing, and the hub that turns the daemon's one event stream into pushes to every
 * open page. lockd web keeps a single `events` subscription to the daemon however many pages are open (so 500
 * pages cost the daemon one connection, not 500), and after each burst of events fetches one status snapshot
 * and pushes its rendered fragment to all overview pages. Nothing is polled: a push happens because the daemon
 * said something changed.
 */
import type { ServerResponse } from 'node:http';
import type { LockdClient } from '../api/client.js';
import type { EventStream } from '../api/events.js';
import type { LockdEvent } from '../protocol/messages.js';

/** Open an SSE response (no buffering by proxies, no caching). */
export function startSse(res: ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
  res.write('retry: 2000\n\n');
}

/** One SSE message; multi-line data becomes several `data:` lines, which the browser joins back with newlines. */
export function sseMessage(event: string, data: string): string {
  return `event: ${event}\n${data
    .split(/\r\n|\r|\n/)
    .map((l) => `data: ${l}\n`)
    .join('')}\n`;
}

/** A comment line every so often keeps idle connections open through proxies that close silent ones. */
const KEEPALIVE_MS = 25_000;
/** After a burst of events, one snapshot: events close together (a release and the grant it causes, a busy queue) share it; 100 ms is still at once for a person, and bounds the status requests to 10 a second. */
const COALESCE_MS = 100;
/** Unsent bytes a page may pile up before it is dropped (a few dozen overview pushes). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** While the daemon is away, try to subscribe again this often (only then: a connected hub never polls). */
const RESUBSCRIBE_MS = 2000;

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly listeners = new Set<(e: LockdEvent) => void>();
  private stream: EventStream | null = null;
  private pending: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout;
  private closed = false;
  connected = false;

  constructor(
    private readonly client: LockdClient,
    /** Renders the overview fragment pushed to every page (the same function the first paint uses). */
    private readonly renderOverview: () => Promise<string>,
    readonly maxClients: number,
  ) {
    this.keepalive = setInterval(() => this.broadcast(': keepalive\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
    void this.subscribe();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Follow the daemon's events in-process (the run pages use this to hear that their run ended). */
  onEvent(fn: (e: LockdEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Add an overview page; false when full (the caller answers 503). */
  add(res: ServerResponse): boolean {
    if (this.clients.size >= this.maxClients) return false;
    startSse(res);
    res.write(sseMessage('daemon', this.connected ? 'connected' : 'unreachable'));
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    // An event between the page's first paint and this subscription would otherwise leave it stale until the next
    // one (and a page that reconnects has missed whatever happened meanwhile): send it the current state now.
    this.schedule();
    return true;
  }

  private broadcast(text: string): void {
    // Encoded once, not once per page: 500 pages are 500 writes of the same bytes.
    const bytes = Buffer.from(text);
    for (const c of this.clients) {
      // A page that stopped reading (a suspended laptop) must not make this process buffer without bound: drop
      // it; its EventSource reconnects when it wakes and gets the current state then.
      if (c.writableLength > MAX_BUFFERED_BYTES) {
        this.clients.delete(c);
        c.destroy();
      } else c.write(bytes);
    }
  }

  private async subscribe(): Promise<void> {
    if (this.closed) return;
    const stream = this.client.events();
    this.stream = stream;
    try {
      await stream.ready;
      this.connected = true;
      this.broadcast(sseMessage('daemon', 'connected'));
      this.schedule();
      for await (const e of stream) {
        this.broadcast(sseMessage('lockd-event', JSON.stringify(e)));
        for (const l of this.listeners) l(e);
        this.schedule();
      }
    } catch {
      // daemon_not_running or daemon_lost: say so and try again below
    }
    if (this.closed) return;
    if (this.connected) {
      this.connected = false;
      this.broadcast(sseMessage('daemon', 'unreachable'));
      this.schedule();
    }
    this.retry = setTimeout(() => void this.subscribe(), RESUBSCRIBE_MS);
    this.retry.unref();
  }

  private schedule(): void {
    if (this.pending || this.clients.size === 0) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      this.renderOverview().then(
        (text) => this.broadcast(sseMessage('overview', text)),
        () => undefined,
      );
    }, COALESCE_MS);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    if (this.pending) clearTimeout(this.pending);
    if (this.retry) clearTimeout(this.retry);
    this.stream?.close();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }
}
