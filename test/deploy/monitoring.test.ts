// deploy/: the Grafana dashboard and the Prometheus alert rules read only metrics that a running
// service exposes (checked against a real /metrics scrape, feed and stream families included),
// and each alert carries what an on-call engineer needs (a duration or a rate, a severity, a summary).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';

const deploy = join(import.meta.dirname, '../../deploy');
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string };
}
interface Target {
  expr: string;
}
interface Panel {
  title: string;
  targets: Target[];
}

const rules = (parseYaml(readFileSync(join(deploy, 'prometheus/alerts.yaml'), 'utf8')) as { groups: Array<{ name: string; rules: AlertRule[] }> }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(join(deploy, 'grafana/lob-rtrl.json'), 'utf8')) as { panels: Panel[]; templating: { list: Array<{ query: string }> } };

/** Metric families a PromQL expression reads: ours and the process defaults, a histogram's series named by their family. */
function metricsIn(expr: string): string[] {
  const names = expr.match(/\b(?:lob_rtrl|nodejs|process)_[a-z0-9_]+\b/g) ?? [];
  return names.map((name) => {
    const family = name.replace(/_(bucket|sum|count)$/, '');
    return family !== name && exposed.get(family) === 'histogram' ? family : name;
  });
}

let exposed: Map<string, string>;
beforeAll(async () => {
  const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-deploy-')), 'db.sqlite');
  const runtime = new ServiceRuntime(loadServiceConfig({ flags: { db, demoFeed: false } }), quiet);
  const app = await buildApp({ runtime, logger: false });
  const body = (await app.inject({ url: '/metrics' })).body;
  exposed = new Map([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  await app.close();
  await runtime.stop();
});

describe('deploy/prometheus/alerts.yaml', () => {
  it('has the alerts the service needs: feed down, book unsynced, accuracy drift among them', () => {
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['LobRtrlFeedDown', 'LobRtrlBookUnsynced', 'LobRtrlAccuracyDrift']));
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it.each(rules.map((r) => [r.alert, r] as const))('%s reads only exposed metrics and says what is wrong', (_name, rule) => {
    const used = metricsIn(rule.expr);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(exposed.has(name), `${rule.alert} uses ${name}`).toBe(true);
    expect(['critical', 'warning', 'info']).toContain(rule.labels.severity);
    expect(rule.annotations.summary.length).toBeGreaterThan(10);
    // A level alert waits before firing; one over a window (increase/rate) already does.
    expect(rule.for !== undefined || /\b(increase|rate)\(/.test(rule.expr), `${rule.alert} fires on a single scrape`).toBe(true);
    // Counters are only ever read through rate() or increase(), never as raw values.
    for (const name of used.filter((n) => exposed.get(n) === 'counter')) {
      expect(rule.expr, `${rule.alert} reads counter ${name} raw`).toMatch(new RegExp(`(rate|increase)\\(${name}\\b`));
    }
  });
});

describe('deploy/grafana/lob-rtrl.json', () => {
  const targets = dashboard.panels.flatMap((panel) => panel.targets.map((target) => [panel.title, target.expr] as const));

  it('draws ticks, latency, accuracy, log-loss, feeds and the stream', () => {
    const used = new Set(targets.flatMap(([, expr]) => metricsIn(expr)));
    for (const name of [
      'lob_rtrl_ticks_total',
      'lob_rtrl_step_latency_seconds',
      'lob_rtrl_model_rolling_accuracy',
      'lob_rtrl_model_rolling_log_loss',
      'lob_rtrl_feed_connected',
      'lob_rtrl_feed_synced',
      'lob_rtrl_stream_dropped_total',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });

  it('every panel query and template variable reads only exposed metrics', () => {
    const queries = [...targets, ...dashboard.templating.list.map((v) => ['template', v.query] as const)];
    for (const [title, expr] of queries) {
      const used = metricsIn(expr);
      expect(used.length, `${title}: ${expr}`).toBeGreaterThan(0);
      for (const name of used) expect(exposed.has(name), `${title} uses ${name}`).toBe(true);
      for (const name of used.filter((n) => exposed.get(n) === 'counter')) {
        expect(expr, `${title} reads counter ${name} raw`).toMatch(new RegExp(`(rate|increase)\\(${name}\\b`));
      }
    }
  });

  it('histograms are read as histograms (histogram_quantile over _bucket by le)', () => {
    for (const [title, expr] of targets.filter(([, e]) => e.includes('_seconds_bucket'))) {
      expect(expr, title).toMatch(/histogram_quantile\([\d.]+, sum by \((?:instance, )?le\) \(rate\(lob_rtrl_\w+_seconds_bucket/);
    }
  });
});
