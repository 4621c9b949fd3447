import { startServer } from './server.mjs';
import { launchBrowser, openPerson, joined } from './browser.mjs';
const server = await startServer(); const browser = await launchBrowser();
try {
  const a = await openPerson(browser, `${server.url}/?room=x&name=Ana%20Lima`, 'Ana');
  await joined(a);
  const b = await openPerson(browser, `${server.url}/?room=x&name=Ben`, 'Ben');
  const c = await openPerson(browser, `${server.url}/?room=x&name=Cy`, 'Cy');
  await joined(b); await joined(c);
  await new Promise(r => setTimeout(r, 5000));
  await b.page.click('#mic');
  await c.page.click('#cam');
  await new Promise(r => setTimeout(r, 2000));
  console.log(await a.page.evaluate(async () => { const o = []; (await window.confab.client.pc.getStats()).forEach(s => { if (s.type.endsWith('bound-rtp')) o.push([s.type, s.kind, s.packetsSent ?? s.packetsReceived]); }); return JSON.stringify(o); }));
  await a.page.screenshot({ path: '/tmp/shot-a.png' });
  const f = await openPerson(browser, `${server.url}/`, 'Form');
  await new Promise(r => setTimeout(r, 1500));
  await f.page.screenshot({ path: '/tmp/shot-form.png' });
  await a.page.setViewportSize({ width: 500, height: 800 });
  await new Promise(r => setTimeout(r, 500));
  await a.page.screenshot({ path: '/tmp/shot-narrow.png' });
} finally { await browser.close(); await server.stop(); }
