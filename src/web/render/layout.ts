/**
 * The page frame every page shares: a skip link, the navigation, the action token field (only when scripts run:
 * actions are POSTs that need the token in a header), and the one script and stylesheet, both served by lockd web.
 */
import { html, type Html } from './html.js';

export interface PageOptions {
  title: string;
  /** What live.js subscribes to: `overview` (status), `run:<id>` (a run's log and verdict), or nothing. */
  live?: string;
  body: Html;
}

export function page(opts: PageOptions): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · lockd</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/live.js" defer></script>
</head>
<body${opts.live ? html` data-live="${opts.live}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header>
<nav aria-label="lockd"><a href="/">lockd</a> <a href="/#locks">Locks</a> <a href="/#queue">Queue</a> <a href="/#pools">Pools</a> <a href="/#runs">Runs</a> <a href="/metrics">Metrics</a></nav>
<span id="live-state" role="status" aria-live="polite">${opts.live ? 'static (live updates need JavaScript)' : ''}</span>
<span id="action-state" role="status" aria-live="polite"></span>
<form id="token-form" hidden><label>Action token <input id="token" type="password" autocomplete="off" size="20"></label></form>
</header>
<main id="main">
<h1>${opts.title}</h1>
${opts.body}
</main>
</body>
</html>
`;
}
