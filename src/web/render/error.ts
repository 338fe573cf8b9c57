/** The 400 / 404 / 5xx pages: the status, one line saying what was wrong, and the way back. */
import { html, type Html } from './html.js';
import { page } from './layout.js';

const TITLES: Record<number, string> = {
  400: 'Bad request',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  413: 'Too large',
  421: 'Wrong host',
  500: 'Internal error',
  503: 'Unavailable',
};

export function errorPage(status: number, message: string): Html {
  return page({ title: `${status} ${TITLES[status] ?? 'Error'}`, body: html`<p class="error">${message}</p><p><a href="/">Back to the overview</a></p>` });
}
