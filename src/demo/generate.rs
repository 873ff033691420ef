//! A seeded generator of a synthetic month of FOCUS 1.2 line items (hourly rows), used by the
//! demo, the tests and the benchmark. Same seed and spec, same bytes. Content: services tagged
//! in a JSON `Tags` column (some with stray case and whitespace), shared RDS / ElastiCache /
//! MSK resources without a service tag, untagged resources, commitment-covered usage and
//! commitment fees, credits, a refund correction and tax rows.

use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub rows: usize,
    pub seed: u64,
    /// Any day of the month to generate.
    pub month: NaiveDate,
    /// Service tag values; the first ones are the most expensive (Zipf-like popularity).
    pub services: Vec<String>,
    pub resources: usize,
    /// Shared database/cache/stream resources (no service tag), cycling RDS, ElastiCache, MSK.
    pub shared: usize,
    pub accounts: usize,
    /// Deliberate changes, e.g. a spike or a month-over-month move for the demo's alerts.
    pub adjustments: Vec<Adjustment>,
    /// Weekly seasonality, trends and day-to-day noise (none: every day alike), for months
    /// that follow each other (the forecast backtest's).
    pub season: Option<Season>,
}

/// How a service's cost moves from day to day: lower at weekends, a steady trend of its own,
/// and noise. Continuous across months: the trend counts days from 2025-01-01.
#[derive(Debug, Clone, PartialEq)]
pub struct Season {
    /// Saturday's and Sunday's cost, percent of a weekday's.
    pub weekend_percent: f64,
    /// Each service's trend is drawn from -max..=+max percent a month.
    pub max_trend_percent: f64,
    /// Day-to-day noise of a service's cost, percent (uniform, +-).
    pub noise_percent: f64,
}

impl Season {
    /// The backtest's months: weekends at 65%, trends up to +-8% a month, +-6% noise.
    pub fn standard() -> Season {
        Season {
            weekend_percent: 65.0,
            max_trend_percent: 8.0,
            noise_percent: 6.0,
        }
    }

    /// The factor of a service (by index; none for shared resources) on `day`.
    fn factor(&self, seed: u64, service: Option<usize>, day: NaiveDate) -> f64 {
        let weekend = day.weekday().num_days_from_monday() >= 5;
        let mut f = if weekend {
            self.weekend_percent / 100.0
        } else {
            1.0
        };
        let epoch = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid day");
        let days = (day - epoch).num_days();
        let key = service.map_or(u64::MAX, |s| s as u64);
        // A deterministic draw in [-1, 1) per (seed, service, salt).
        let draw = |salt: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ key.wrapping_mul(0x9e37_79b9) ^ salt);
            rng.random::<f64>() * 2.0 - 1.0
        };
        if service.is_some() {
            let trend = draw(0x7e4d) * self.max_trend_percent / 100.0;
            f *= (1.0 + trend).powf(days as f64 / 30.0);
        }
        f * (1.0 + draw(days as u64 + 1) * self.noise_percent / 100.0)
    }
}

/// Scales the cost of one service's resources on the days `from..=to` to `percent`%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub service: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub percent: i64,
}

impl GenSpec {
    /// The benchmark's shape: ~60 services, ~5,000 resources, 8 shared resources.
    pub fn standard(rows: usize, seed: u64) -> GenSpec {
        let prefixes = [
            "checkout",
            "payments",
            "catalog",
            "search",
            "auth",
            "profile",
            "orders",
            "inventory",
            "shipping",
            "pricing",
            "reco",
            "notify",
            "billing",
            "ledger",
            "fraud",
            "media",
            "reviews",
            "cart",
            "ads",
            "analytics",
        ];
        let services = ["api", "worker", "etl"]
            .iter()
            .flat_map(|s| prefixes.iter().map(move |p| format!("{p}-{s}")))
            .collect();
        GenSpec {
            rows,
            seed,
            month: NaiveDate::from_ymd_opt(2025, 3, 1).expect("valid date"),
            services,
            resources: 5000,
            shared: 8,
            accounts: 40,
            adjustments: Vec::new(),
            season: None,
        }
    }
}

/// The columns written, in order.
pub const COLUMNS: [&str; 22] = [
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingCurrency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ChargeCategory",
    "ChargeClass",
    "ServiceProviderName",
    "ServiceName",
    "ServiceCategory",
    "RegionId",
    "ResourceId",
    "ResourceType",
    "SkuId",
    "Tags",
];

const KINDS: [(&str, &str, &str, f64); 8] = [
    // (ServiceName, ServiceCategory, ResourceType, median $ per hour)
    ("Amazon Elastic Compute Cloud", "Compute", "Instance", 0.12),
    ("Amazon Simple Storage Service", "Storage", "Bucket", 0.02),
    ("AWS Lambda", "Compute", "Function", 0.008),
    ("Amazon DynamoDB", "Databases", "Table", 0.04),
    (
        "Elastic Load Balancing",
        "Networking",
        "Load Balancer",
        0.03,
    ),
    (
        "AmazonCloudWatch",
        "Management and Governance",
        "Log Group",
        0.01,
    ),
    ("Amazon Simple Queue Service", "Integration", "Queue", 0.002),
    (
        "Amazon Elastic Kubernetes Service",
        "Compute",
        "Cluster",
        0.10,
    ),
];

const SHARED_KINDS: [(&str, &str, &str, &str); 3] = [
    (
        "Amazon Relational Database Service",
        "Databases",
        "DB Instance",
        "aurora",
    ),
    ("Amazon ElastiCache", "Databases", "Cache Cluster", "redis"),
    (
        "Amazon Managed Streaming for Apache Kafka",
        "Analytics",
        "Cluster",
        "kafka",
    ),
];

struct Resource {
    id: String,
    service: Option<String>,
    service_name: &'static str,
    category: &'static str,
    kind: &'static str,
    account: usize,
    region: &'static str,
    tags: String,
    hourly_nanos: i64,
    covered: bool,
}

/// One generated line item (costs in nano-units, written with 9 decimals).
struct Line {
    hour: i64,
    resource: Option<usize>,
    category: &'static str,
    class: &'static str,
    billed: i64,
    effective: i64,
    list: i64,
    fee: bool,
}

/// A generated world: the resources and the month.
pub struct World {
    spec: GenSpec,
    first: NaiveDate,
    hours: i64,
    accounts: Vec<String>,
    resources: Vec<Resource>,
    popularity: Vec<f64>,
    commitment_id: String,
}

/// The i-th shared database, cache or Kafka cluster, in the first account.
fn shared_resource(
    rng: &mut ChaCha8Rng,
    i: usize,
    region: &'static str,
    account: &str,
    hex: &str,
) -> Resource {
    let (name, category, kind, short) = SHARED_KINDS[i % 3];
    let id = match short {
        "aurora" => format!("arn:aws:rds:{region}:{account}:db:shared-aurora-{i:02}"),
        "redis" => format!("arn:aws:elasticache:{region}:{account}:cluster:shared-redis-{i:02}"),
        _ => format!("arn:aws:kafka:{region}:{account}:cluster/shared-kafka-{i:02}/{hex}"),
    };
    Resource {
        id,
        service: None,
        service_name: name,
        category,
        kind,
        account: 0,
        region,
        tags: r#"{"team":"platform","shared":"true","env":"prod"}"#.to_string(),
        hourly_nanos: rng.random_range(300_000_000..900_000_000),
        covered: short != "kafka",
    }
}

impl World {
    pub fn new(spec: GenSpec) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let first = spec.month.with_day(1).expect("day 1 exists");
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .expect("a month after exists");
        let hours = (next - first).num_hours();
        let accounts: Vec<String> = (0..spec.accounts.max(1))
            .map(|_| {
                rng.random_range(100_000_000_000u64..999_999_999_999)
                    .to_string()
            })
            .collect();
        let regions = ["us-east-1", "us-east-1", "eu-west-1", "us-west-2"];
        let service_count = spec.services.len().max(1);
        let mut resources = Vec::new();
        for i in 0..spec.resources.max(spec.shared + 1) {
            let hex: String = (0..12)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
                .collect();
            let account_index = rng.random_range(0..accounts.len());
            let account = &accounts[account_index];
            let region = regions[rng.random_range(0..regions.len())];
            if i < spec.shared {
                resources.push(shared_resource(&mut rng, i, region, &accounts[0], &hex));
                continue;
            }
            let (name, category, kind, median) = KINDS[rng.random_range(0..KINDS.len())];
            // Zipf-like: low indexes are picked more often.
            let pick = (rng.random::<f64>().powf(2.2) * service_count as f64) as usize;
            let service = &spec.services[pick.min(service_count - 1)];
            let roll: f64 = rng.random();
            let tagged = roll >= 0.10;
            let tags = if roll < 0.05 {
                String::new()
            } else if roll < 0.10 {
                r#"{"env":"dev","owner":"unknown"}"#.to_string()
            } else if roll < 0.13 {
                // Stray case and whitespace that the rules normalise.
                format!(
                    r#"{{"service":" {} ","env":"prod"}}"#,
                    service.to_uppercase()
                )
            } else {
                format!(r#"{{"service":"{service}","env":"prod"}}"#)
            };
            let id = format!(
                "arn:aws:{}:{region}:{account}:{}/{}-{hex}",
                kind.to_lowercase().replace(' ', "-"),
                kind.to_lowercase().replace(' ', ""),
                service
            );
            let hourly = median * (0.3 + 1.7 * rng.random::<f64>());
            resources.push(Resource {
                id,
                service: tagged.then(|| service.clone()),
                service_name: name,
                category,
                kind,
                account: account_index,
                region,
                tags,
                hourly_nanos: (hourly * 1e9) as i64,
                covered: name == "Amazon Elastic Compute Cloud" && rng.random::<f64>() < 0.3,
            });
        }
        let popularity = resources
            .iter()
            .enumerate()
            .map(|(i, _)| if i < spec.shared { 6.0 } else { 1.0 })
            .collect();
        let commitment_id = format!(
            "arn:aws:savingsplans::{}:savingsplan/sp-{:08x}",
            accounts[0], spec.seed
        );
        World {
            spec,
            first,
            hours,
            accounts,
            resources,
            popularity,
            commitment_id,
        }
    }

    /// The shared resources' ids, for weight tables and tests.
    pub fn shared_resource_ids(&self) -> Vec<String> {
        self.resources[..self.spec.shared]
            .iter()
            .map(|r| r.id.clone())
            .collect()
    }

    fn lines(&self) -> impl Iterator<Item = Line> + '_ {
        // Seasonal months follow each other: each draws its own lines.
        let month_salt = match self.spec.season {
            Some(_) => u64::from(self.first.year() as u32 * 12 + self.first.month()),
            None => 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0x5eed_f0c5 ^ month_salt);
        let total_weight: f64 = self.popularity.iter().sum();
        let cumulative: Vec<f64> = self
            .popularity
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total_weight;
                Some(*acc)
            })
            .collect();
        let rows = self.spec.rows;
        // Cost per row so that a resource's month is about its hourly rate x hours, however
        // many rows it gets.
        let hours = self.hours as f64;
        let row_scale: Vec<f64> = self
            .popularity
            .iter()
            .map(|p| hours * total_weight / (rows.max(1) as f64 * p))
            .collect();
        (0..rows).map(move |i| {
            let hour = (i as i64 * self.hours) / rows.max(1) as i64;
            self.line(&mut rng, hour, &cumulative, &row_scale)
        })
    }

    /// One line item at `hour`: now and then a tax or a fee, else a resource's usage (picked
    /// by popularity) with an odd credit or correction.
    fn line(&self, rng: &mut ChaCha8Rng, hour: i64, cumulative: &[f64], row_scale: &[f64]) -> Line {
        let roll: f64 = rng.random();
        if roll < 0.001 {
            let tax = rng.random_range(1_000_000..50_000_000);
            return Line {
                hour,
                resource: None,
                category: "Tax",
                class: "",
                billed: tax,
                effective: tax,
                list: 0,
                fee: false,
            };
        }
        if roll < 0.0015 {
            let fee = rng.random_range(500_000_000..2_000_000_000);
            return Line {
                hour,
                resource: None,
                category: "Purchase",
                class: "",
                billed: fee,
                effective: fee / 25,
                list: fee,
                fee: true,
            };
        }
        let u: f64 = rng.random();
        let r = cumulative
            .partition_point(|&c| c < u)
            .min(self.resources.len() - 1);
        let resource = &self.resources[r];
        let mut list =
            (resource.hourly_nanos as f64 * row_scale[r] * (0.5 + rng.random::<f64>())) as i64;
        let day = (self.first.and_hms_opt(0, 0, 0).expect("midnight exists")
            + Duration::hours(hour))
        .date();
        if let Some(season) = &self.spec.season {
            let service = resource
                .service
                .as_ref()
                .and_then(|s| self.spec.services.iter().position(|x| x == s));
            list = (list as f64 * season.factor(self.spec.seed, service, day)) as i64;
        }
        for a in &self.spec.adjustments {
            if resource.service.as_deref() == Some(a.service.as_str())
                && day >= a.from
                && day <= a.to
            {
                list = list * a.percent / 100;
            }
        }
        if roll < 0.006 {
            let credit = -(list / 2);
            return Line {
                hour,
                resource: Some(r),
                category: "Credit",
                class: "",
                billed: credit,
                effective: credit,
                list: 0,
                fee: false,
            };
        }
        if roll < 0.0065 {
            return Line {
                hour,
                resource: Some(r),
                category: "Usage",
                class: "Correction",
                billed: -list,
                effective: -list,
                list: -list,
                fee: false,
            };
        }
        let effective = list * 97 / 100;
        let (billed, effective) = if resource.covered {
            (0, list * 66 / 100)
        } else {
            (effective, effective)
        };
        Line {
            hour,
            resource: Some(r),
            category: "Usage",
            class: "",
            billed,
            effective,
            list,
            fee: false,
        }
    }

    fn timestamp(&self, hour: i64) -> String {
        let t = self.first.and_hms_opt(0, 0, 0).expect("midnight exists") + Duration::hours(hour);
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn fields(&self, line: &Line) -> [String; 22] {
        let next = self
            .first
            .checked_add_months(chrono::Months::new(1))
            .expect("a month after exists");
        let money = |n: i64| crate::money::Nanos(n.into()).to_string();
        let (account, service, category, region, id, kind, tags) = match line.resource {
            Some(r) => {
                let res = &self.resources[r];
                (
                    res.account,
                    res.service_name,
                    res.category,
                    res.region,
                    res.id.as_str(),
                    res.kind,
                    res.tags.as_str(),
                )
            }
            None if line.fee => (
                0,
                "Savings Plans for AWS Compute usage",
                "Compute",
                "",
                self.commitment_id.as_str(),
                "Savings Plan",
                "",
            ),
            None => (0, "Tax", "Other", "", "", "", ""),
        };
        [
            self.accounts[0].clone(),
            "ExampleCorp Payer".to_string(),
            self.accounts[account].clone(),
            format!("account-{account:02}"),
            format!("{}T00:00:00Z", self.first.format("%Y-%m-%d")),
            format!("{}T00:00:00Z", next.format("%Y-%m-%d")),
            self.timestamp(line.hour),
            self.timestamp(line.hour + 1),
            "USD".to_string(),
            money(line.billed),
            money(line.effective),
            money(line.list),
            line.category.to_string(),
            line.class.to_string(),
            "AWS".to_string(),
            service.to_string(),
            category.to_string(),
            region.to_string(),
            id.to_string(),
            kind.to_string(),
            format!("SKU{:04}", line.hour % 97),
            tags.to_string(),
        ]
    }

    /// Writes the month as CSV (gzip-compressed when the path ends in `.gz`).
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        let mut writer = super::csv_writer(path)?;
        writer.write_record(COLUMNS)?;
        for line in self.lines() {
            writer.write_record(self.fields(&line))?;
        }
        writer.flush()?;
        Ok(())
    }

    /// Writes the month as parquet (costs as float64, timestamps as UTC datetimes), in row
    /// groups of at most 256k rows so memory stays flat.
    pub fn write_parquet(&self, path: &Path) -> anyhow::Result<()> {
        super::write_parquet(path, self.lines().map(|l| self.fields(&l)), |rows| {
            to_batch(rows)
        })?;
        Ok(())
    }

    /// Writes a per-resource weight table for the shared resources (columns resource_id,
    /// service, weight), each split over 3 to 6 services.
    pub fn write_weights(&self, path: &Path) -> anyhow::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0x0077_e167);
        let mut writer = csv::Writer::from_path(path)?;
        writer.write_record(["resource_id", "service", "weight"])?;
        for id in self.shared_resource_ids() {
            let n = rng.random_range(3..=6).min(self.spec.services.len());
            let mut chosen: Vec<&String> = Vec::new();
            while chosen.len() < n {
                let s = &self.spec.services[rng.random_range(0..self.spec.services.len())];
                if !chosen.contains(&s) {
                    chosen.push(s);
                }
            }
            for s in chosen {
                let weight = rng.random_range(1..1000);
                writer.write_record([id.as_str(), s.as_str(), &weight.to_string()])?;
            }
        }
        writer.flush()?;
        Ok(())
    }
}

/// The month's lines as an AWS CUR 2.0 export (`costsplit generate --cur2`): the same
/// resources, services and tags (`user_` keys in `resource_tags`), covered usage as
/// `SavingsPlanCoveredUsage` at its on-demand price with its effective cost, the commitment
/// fee as `SavingsPlanRecurringFee`, tax, credits and corrections as their line item types.
pub const CUR2_COLUMNS: [&str; 15] = [
    "bill_billing_period_start_date",
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_usage_start_date",
    "line_item_line_item_type",
    "line_item_product_code",
    "product",
    "line_item_resource_id",
    "line_item_currency_code",
    "line_item_unblended_cost",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "pricing_public_on_demand_cost",
    "resource_tags",
];

impl World {
    fn cur2_fields(&self, line: &Line) -> [String; 15] {
        let money = |n: i64| crate::money::Nanos(n.into()).to_string();
        let (account, service, id, tags) = match line.resource {
            Some(r) => {
                let res = &self.resources[r];
                (
                    res.account,
                    res.service_name,
                    res.id.as_str(),
                    res.tags.as_str(),
                )
            }
            None if line.fee => (
                0,
                "Savings Plans for AWS Compute usage",
                self.commitment_id.as_str(),
                "",
            ),
            None => (0, "Tax", "", ""),
        };
        let user_tags = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(tags)
            .map(|map| {
                let prefixed: serde_json::Map<String, serde_json::Value> = map
                    .into_iter()
                    .map(|(k, v)| (format!("user_{k}"), v))
                    .collect();
                serde_json::Value::Object(prefixed).to_string()
            })
            .unwrap_or_default();
        let covered = line.resource.is_some_and(|r| self.resources[r].covered)
            && line.category == "Usage"
            && line.class.is_empty();
        let (kind, unblended, sp_effective, commitment, used) = if line.fee {
            // The unused part of the commitment is the fee's effective cost.
            let fee = line.billed;
            (
                "SavingsPlanRecurringFee",
                money(fee),
                String::new(),
                money(fee),
                money(fee - line.effective),
            )
        } else if covered {
            (
                "SavingsPlanCoveredUsage",
                money(line.list),
                money(line.effective),
                String::new(),
                String::new(),
            )
        } else {
            let kind = match line.category {
                "Tax" => "Tax",
                "Credit" => "Credit",
                _ => "Usage",
            };
            (
                kind,
                money(line.billed),
                String::new(),
                String::new(),
                String::new(),
            )
        };
        let code: String = service
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        [
            format!("{}T00:00:00Z", self.first.format("%Y-%m-%d")),
            self.accounts[0].clone(),
            self.accounts[account].clone(),
            self.timestamp(line.hour),
            kind.to_string(),
            code,
            serde_json::json!({ "product_name": service }).to_string(),
            id.to_string(),
            "USD".to_string(),
            unblended,
            sp_effective,
            commitment,
            used,
            if line.category == "Usage" || line.fee {
                money(line.list)
            } else {
                String::new()
            },
            user_tags,
        ]
    }

    /// Writes the month as a CUR 2.0 CSV (gzip-compressed when the path ends in `.gz`).
    pub fn write_cur2_csv(&self, path: &Path) -> anyhow::Result<()> {
        let mut writer = super::csv_writer(path)?;
        writer.write_record(CUR2_COLUMNS)?;
        for line in self.lines() {
            writer.write_record(self.cur2_fields(&line))?;
        }
        writer.flush()?;
        Ok(())
    }

    /// Writes the month as a CUR 2.0 parquet file (costs as float64, dates as timestamps,
    /// `product` and `resource_tags` as JSON text).
    pub fn write_cur2_parquet(&self, path: &Path) -> anyhow::Result<()> {
        super::write_parquet(path, self.lines().map(|l| self.cur2_fields(&l)), |rows| {
            let mut columns = Vec::with_capacity(CUR2_COLUMNS.len());
            for (i, name) in CUR2_COLUMNS.iter().enumerate() {
                let column = if name.ends_with("_cost")
                    || name.ends_with("_commitment")
                    || name.ends_with("_to_date")
                {
                    super::float_column(rows, i)?
                } else if name.ends_with("_date") {
                    super::timestamp_column(rows, i)
                } else {
                    super::text_column(rows, i)
                };
                columns.push((*name, column));
            }
            super::batch(columns)
        })?;
        Ok(())
    }
}

fn to_batch(rows: &[[String; 22]]) -> anyhow::Result<arrow_array::RecordBatch> {
    let mut columns = Vec::with_capacity(COLUMNS.len());
    for (i, name) in COLUMNS.iter().enumerate() {
        let column = match *name {
            "BilledCost" | "EffectiveCost" | "ListCost" => super::float_column(rows, i)?,
            "BillingPeriodStart" | "BillingPeriodEnd" | "ChargePeriodStart" | "ChargePeriodEnd" => {
                super::timestamp_column(rows, i)
            }
            _ => super::text_column(rows, i),
        };
        columns.push((*name, column));
    }
    super::batch(columns)
}
