/*
 * A Backstage Cost Insights client over costsplit's read-only API: implements the plugin's
 * CostInsightsApi with one GET per method. Copy this file into your app (e.g.
 * packages/app/src/costsplit/) and register it; see README.md beside it.
 *
 * Requests go through Backstage's proxy (`/api/proxy/costsplit`), which adds costsplit's
 * bearer token on the server side, so the token never reaches the browser.
 */
import {
  Alert,
  CostInsightsApi,
  ProductInsightsOptions,
} from '@backstage-community/plugin-cost-insights';
import {
  Cost,
  Entity,
  Group,
  MetricData,
  Project,
} from '@backstage-community/plugin-cost-insights-common';
import { DiscoveryApi, FetchApi } from '@backstage/core-plugin-api';

export class CostsplitCostInsightsClient implements CostInsightsApi {
  constructor(
    private readonly options: {
      discoveryApi: DiscoveryApi;
      fetchApi: FetchApi;
      /** The proxy endpoint's path under /api/proxy; `costsplit` by default. */
      proxyPath?: string;
    },
  ) {}

  private async get<T>(path: string, query: Record<string, string | null | undefined> = {}): Promise<T> {
    const base = await this.options.discoveryApi.getBaseUrl('proxy');
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value) params.set(key, value);
    }
    const search = params.toString();
    const url = `${base}/${this.options.proxyPath ?? 'costsplit'}/api/v1/cost-insights${path}${search ? `?${search}` : ''}`;
    const response = await this.options.fetchApi.fetch(url);
    if (!response.ok) {
      // costsplit answers {code, message}; the message says what to change.
      const body = await response.json().catch(() => ({}));
      throw new Error(`costsplit ${response.status}: ${body.message ?? response.statusText}`);
    }
    return (await response.json()) as T;
  }

  getLastCompleteBillingDate(): Promise<string> {
    return this.get<string>('/last-complete-billing-date');
  }

  /** costsplit's teams (from the rules and the service catalog), whoever asks. */
  getUserGroups(_userId: string): Promise<Group[]> {
    return this.get<Group[]>('/groups');
  }

  /** A team's services are its projects. */
  getGroupProjects(group: string): Promise<Project[]> {
    return this.get<Project[]>(`/groups/${encodeURIComponent(group)}/projects`);
  }

  getGroupDailyCost(group: string, intervals: string): Promise<Cost> {
    return this.get<Cost>(`/groups/${encodeURIComponent(group)}/daily-cost`, { intervals });
  }

  getProjectDailyCost(project: string, intervals: string): Promise<Cost> {
    return this.get<Cost>(`/projects/${encodeURIComponent(project)}/daily-cost`, { intervals });
  }

  /** `[kind:][namespace/]name`; the entity's name is the costsplit service. */
  getCatalogEntityDailyCost(catalogEntityRef: string, intervals: string): Promise<Cost> {
    const [kind, rest] = catalogEntityRef.includes(':')
      ? catalogEntityRef.split(':', 2)
      : ['component', catalogEntityRef];
    const [namespace, name] = rest.includes('/') ? rest.split('/', 2) : ['default', rest];
    const path = [kind, namespace, name].map(encodeURIComponent).join('/');
    return this.get<Cost>(`/entities/${path}/daily-cost`, { intervals });
  }

  /** A metric is a costsplit usage source (`[[source]]` in the rules). */
  getDailyMetricData(metric: string, intervals: string): Promise<MetricData> {
    return this.get<MetricData>(`/metrics/${encodeURIComponent(metric)}/daily-data`, { intervals });
  }

  /** A product is a provider service; GET /api/v1/cost-insights/products lists their keys. */
  getProductInsights(options: ProductInsightsOptions): Promise<Entity> {
    return this.get<Entity>('/product-insights', {
      product: options.product,
      group: options.group,
      intervals: options.intervals,
      project: options.project,
    });
  }

  getAlerts(group: string): Promise<Alert[]> {
    return this.get<Alert[]>(`/groups/${encodeURIComponent(group)}/alerts`);
  }
}
