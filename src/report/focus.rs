//! The allocated month as a FOCUS 1.3 cost and usage dataset, costsplit acting as a data
//! generator that splits shared charges: every fact is a charge (one day, one resource, one
//! tag set); a charge a pool took is replaced by its allocated charges, which carry the 1.3
//! split-cost-allocation columns and whose costs sum exactly to the origin charge. Pure.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::csv_out::{Cell, CsvOut};
use crate::allocate::{split_like, ChargePart, ChargeSplit};
use crate::model::split_tags::{DIMENSION, DIMENSION_NAMES};
use crate::model::{Fact, Method, Tags, UNALLOCATED};
use crate::money::{Nanos, NANOS_PER_UNIT};

/// The columns written: FOCUS 1.3's mandatory columns (valid FOCUS 1.4 Cost and Usage
/// columns too), the conditional ones the facts carry, the split-cost-allocation columns, and
/// costsplit's own (`x_` prefixed, as FOCUS asks of custom columns). Columns a daily fact
/// cannot carry are null where FOCUS allows it (`BillingAccountName`, `ChargeClass`,
/// `PricingQuantity`, `PricingUnit`: a fact sums line items of many prices and units).
pub const COLUMNS: [&str; 33] = [
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "BillingCurrency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "PricingQuantity",
    "PricingUnit",
    "ServiceProviderName",
    "HostProviderName",
    "InvoiceIssuerName",
    "ServiceName",
    "ServiceCategory",
    "ResourceId",
    "Tags",
    "AllocatedMethodId",
    "AllocatedMethodDetails",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "x_CostsplitService",
    "x_CostsplitPool",
    "x_CostsplitRulesHash",
    "x_CostsplitMethod",
];

/// FOCUS's `ServiceCategory` of a provider service, by the words of its name (AWS, Azure
/// and Google Cloud names and AWS product codes); `Other` for a service costsplit does not
/// know. A fact keeps the provider's service name, not the category a FOCUS source gave.
pub fn service_category(service: &str) -> &'static str {
    const CATEGORIES: [(&str, &[&str]); 12] = [
        (
            "AI and Machine Learning",
            &[
                "sagemaker",
                "bedrock",
                "rekognition",
                "comprehend",
                "textract",
                "machine learning",
                "openai",
                "vertex",
                "cognitive",
            ],
        ),
        (
            "Identity",
            &[
                "key management",
                "kms",
                "cognito",
                "identity",
                "directory service",
                "entra",
                "active directory",
            ],
        ),
        (
            "Security",
            &[
                "waf",
                "guardduty",
                "security",
                "shield",
                "inspector",
                "macie",
                "secrets manager",
                "certificate manager",
                "firewall",
            ],
        ),
        (
            "Databases",
            &[
                "relational database",
                "rds",
                "dynamodb",
                "elasticache",
                "documentdb",
                "neptune",
                "aurora",
                "memorydb",
                "keyspaces",
                "timestream",
                "cosmos",
                "sql",
                "database",
                "redis",
                "spanner",
                "bigtable",
                "firestore",
            ],
        ),
        (
            "Analytics",
            &[
                "athena",
                "kinesis",
                "emr",
                "glue",
                "redshift",
                "quicksight",
                "opensearch",
                "elasticsearch",
                "kafka",
                "msk",
                "bigquery",
                "data factory",
                "synapse",
                "databricks",
                "dataflow",
            ],
        ),
        (
            "Storage",
            &[
                "simple storage",
                "s3",
                "elastic block",
                "ebs",
                "elastic file",
                "efs",
                "glacier",
                "backup",
                "fsx",
                "storage",
            ],
        ),
        (
            "Networking",
            &[
                "cloudfront",
                "route 53",
                "route53",
                "load balanc",
                "virtual private cloud",
                "vpc",
                "data transfer",
                "api gateway",
                "direct connect",
                "global accelerator",
                "nat gateway",
                "cdn",
                "dns",
                "network",
                "transit gateway",
            ],
        ),
        (
            "Integration",
            &[
                "simple queue",
                "sqs",
                "simple notification",
                "sns",
                "eventbridge",
                "service bus",
                "event grid",
                "pub/sub",
                "mq",
            ],
        ),
        (
            "Management and Governance",
            &[
                "cloudwatch",
                "cloudtrail",
                "config",
                "systems manager",
                "cloudformation",
                "organizations",
                "control tower",
                "monitor",
                "log analytics",
                "logging",
            ],
        ),
        (
            "Developer Tools",
            &[
                "codebuild",
                "codepipeline",
                "codecommit",
                "codeartifact",
                "x-ray",
                "cloud9",
                "devops",
            ],
        ),
        (
            "Compute",
            &[
                "elastic compute",
                "ec2",
                "lambda",
                "fargate",
                "batch",
                "lightsail",
                "virtual machine",
                "compute",
                "app service",
                "functions",
                "kubernetes",
                "eks",
                "container",
                "ecs",
                "app runner",
                "cloud run",
            ],
        ),
        ("Web", &["amplify", "elastic beanstalk", "static web"]),
    ];
    let name = service.to_ascii_lowercase();
    let word = |w: &str| {
        // Short codes (s3, ec2, rds, …) must stand as whole words, not inside another one.
        if w.len() <= 4 {
            name.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|part| part == w || part == format!("amazon{w}") || part == format!("aws{w}"))
        } else {
            name.contains(w)
        }
    };
    CATEGORIES
        .iter()
        .find(|(_, words)| words.iter().any(|w| word(w)))
        .map_or("Other", |(category, _)| category)
}

/// The `AllocatedMethodId` of a method (README: "FOCUS output" documents each).
pub fn method_id(method: Method, fallback_used: bool) -> String {
    let name = match method {
        Method::Unallocated => "unallocated",
        m => m.as_str(),
    };
    if fallback_used {
        format!("costsplit/fallback-{name}")
    } else {
        format!("costsplit/{name}")
    }
}

/// A ratio in parts per billion as a JSON number (`0.333333334`).
fn ratio_number(ppb: i64) -> String {
    let text = Nanos(i128::from(ppb)).format(9);
    let trimmed = text.trim_end_matches('0');
    trimmed.strip_suffix('.').unwrap_or(trimmed).to_string()
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

/// `YYYY-MM` -> the period's first instant and the next period's.
fn period_bounds(period: &str) -> (String, String) {
    match crate::model::month_bounds(period) {
        Some((first, last)) => (
            format!("{first}T00:00:00Z"),
            format!("{}T00:00:00Z", last.succ_opt().unwrap_or(last)),
        ),
        None => (String::new(), String::new()),
    }
}

/// Owner of a service: (team, cost center).
pub type Owners = BTreeMap<String, (String, String)>;

/// FOCUS's `UsageUnit` of an allocation element, by the dimension's index.
const DIMENSION_UNITS: [&str; 3] = ["CPU", "Memory", "Accelerator"];

/// An origin charge as the export writes it: a fact, or the facts of one split workload (or
/// idle capacity) that differ only in their resource dimension, whose allocated charges then
/// carry one element per dimension.
struct Charge<'a> {
    fact: &'a Fact,
    /// The fact's tags without the dimension.
    tags: Cow<'a, Tags>,
    pool: Option<&'a str>,
    parts: Vec<(ChargePart, Vec<Element>)>,
}

/// One element of an allocated charge: its dimension (an index into [`DIMENSION_UNITS`],
/// `None` for a charge without dimensions) and its ratio of the origin charge in parts per
/// billion.
type Element = (Option<usize>, i64);

fn dimension_of(fact: &Fact) -> Option<usize> {
    let name = fact.tags.get(DIMENSION)?;
    DIMENSION_NAMES.iter().position(|d| d == name)
}

/// The origin charges of `splits`, in the order of their first facts. Facts with a dimension
/// are grouped by everything else; each group's parts are merged by service, method and basis,
/// and the elements' ratios, one per (part, dimension), sum exactly to 1 per origin charge.
fn charges<'a>(splits: &'a [ChargeSplit<'a>]) -> Vec<Charge<'a>> {
    type GroupKey<'k> = (chrono::NaiveDate, [&'k str; 8], Tags, Option<&'k str>);
    let mut order: Vec<Charge<'a>> = Vec::new();
    let mut groups: BTreeMap<GroupKey<'a>, (usize, Vec<usize>)> = BTreeMap::new();
    for (i, split) in splits.iter().enumerate() {
        let f = split.fact;
        let pool = split.pool.as_deref();
        if dimension_of(f).is_none() {
            order.push(Charge {
                fact: f,
                tags: Cow::Borrowed(&f.tags),
                pool,
                parts: split
                    .parts
                    .iter()
                    .map(|p| (p.clone(), vec![(None, p.ratio_ppb)]))
                    .collect(),
            });
            continue;
        }
        let mut tags = Tags::clone(&f.tags);
        tags.remove(DIMENSION);
        let key = (
            f.day,
            [
                f.billing_period.as_str(),
                &f.billing_account,
                &f.sub_account,
                &f.provider,
                &f.provider_service,
                &f.resource_id,
                &f.charge_category,
                &f.currency,
            ],
            tags.clone(),
            pool,
        );
        let slot = order.len();
        let entry = groups.entry(key).or_insert_with(|| (slot, Vec::new()));
        if entry.0 == slot {
            order.push(Charge {
                fact: f,
                tags: Cow::Owned(tags),
                pool,
                parts: Vec::new(),
            });
        }
        entry.1.push(i);
    }
    for (_, (slot, members)) in groups {
        order[slot].parts = merged_parts(members.iter().map(|&i| &splits[i]));
    }
    order
}

/// The parts of one origin charge's facts merged by (service, method, fallback, basis), with
/// one element per dimension: each (part, dimension) cell's ratio of the whole, by absolute
/// amount (equal when all are zero), largest remainder so they sum exactly to 1e9.
fn merged_parts<'a>(
    members: impl Iterator<Item = &'a ChargeSplit<'a>>,
) -> Vec<(ChargePart, Vec<Element>)> {
    let mut parts: Vec<ChargePart> = Vec::new();
    // (part index, dimension) -> amount.
    let mut cells: BTreeMap<(usize, usize), Nanos> = BTreeMap::new();
    for split in members {
        let dimension = dimension_of(split.fact).unwrap_or(0);
        for p in &split.parts {
            let same = |q: &ChargePart| {
                q.service == p.service
                    && q.method == p.method
                    && q.fallback_used == p.fallback_used
                    && q.basis == p.basis
            };
            let index = match parts.iter().position(same) {
                Some(index) => {
                    let q = &mut parts[index];
                    q.amount += p.amount;
                    q.other_amount += p.other_amount;
                    q.list += p.list;
                    q.contracted += p.contracted;
                    index
                }
                None => {
                    parts.push(p.clone());
                    parts.len() - 1
                }
            };
            *cells.entry((index, dimension)).or_default() += p.amount;
        }
    }
    let amounts: Vec<Nanos> = cells.values().copied().collect();
    let ratios = split_like(Nanos(NANOS_PER_UNIT), &amounts);
    let mut elements: Vec<Vec<Element>> = vec![Vec::new(); parts.len()];
    for ((&(index, dimension), _), ratio) in cells.iter().zip(ratios) {
        let ppb = i64::try_from(ratio.0).expect("at most 1e9");
        elements[index].push((Some(dimension), ppb));
    }
    parts
        .into_iter()
        .zip(elements)
        .map(|(mut part, elements)| {
            part.ratio_ppb = elements.iter().map(|(_, r)| r).sum();
            (part, elements)
        })
        .collect()
}

/// A pool share's FOCUS allocation columns: the method id, the details JSON (its elements'
/// ratios, the pool, the basis), the allocated resource and its tags (service, team, cost
/// center).
fn allocation_columns(
    pool: &str,
    part: &ChargePart,
    elements: &[Element],
    owners: &Owners,
) -> (String, String, String, String) {
    let elements: Vec<String> = elements
        .iter()
        .map(|(dimension, ppb)| match dimension {
            Some(d) => format!(
                "{{\"AllocatedRatio\":{},\"UsageUnit\":{}}}",
                ratio_number(*ppb),
                json_string(DIMENSION_UNITS[*d])
            ),
            None => format!("{{\"AllocatedRatio\":{}}}", ratio_number(*ppb)),
        })
        .collect();
    let mut details = format!(
        "{{\"Elements\":[{}],\"x_Pool\":{}",
        elements.join(","),
        json_string(pool)
    );
    if !part.basis.is_empty() {
        details.push_str(&format!(",\"x_Basis\":{}", json_string(&part.basis)));
    }
    details.push('}');
    let (resource, tags) = if part.service == UNALLOCATED {
        (String::new(), String::new())
    } else {
        let (team, cost_center) = owners.get(&part.service).cloned().unwrap_or_default();
        let mut tags = BTreeMap::new();
        tags.insert("costsplit/service", part.service.as_str().to_string());
        if !team.is_empty() {
            tags.insert("costsplit/team", team);
        }
        if !cost_center.is_empty() {
            tags.insert("costsplit/cost_center", cost_center);
        }
        (
            part.service.clone(),
            serde_json::to_string(&tags).expect("tags always serialise"),
        )
    };
    (
        method_id(part.method, part.fallback_used),
        details,
        resource,
        tags,
    )
}

/// Writes the dataset as CSV. `basis_is_effective` says which cost column the split follows
/// (the other is split in the same proportions).
pub fn focus_csv(
    splits: &[ChargeSplit<'_>],
    owners: &Owners,
    rules_hash: &str,
    basis_is_effective: bool,
) -> String {
    let mut out = CsvOut::for_machines(&COLUMNS);
    for charge in charges(splits) {
        let f = charge.fact;
        let (period_start, period_end) = period_bounds(&f.billing_period);
        let day_start = format!("{}T00:00:00Z", f.day);
        let day_end = format!("{}T00:00:00Z", f.day.succ_opt().unwrap_or(f.day));
        let tags = serde_json::to_string(charge.tags.as_ref()).expect("tags always serialise");
        for (part, elements) in &charge.parts {
            let (effective, billed) = if basis_is_effective {
                (part.amount, part.other_amount)
            } else {
                (part.other_amount, part.amount)
            };
            let (effective, billed) = (effective.to_string(), billed.to_string());
            let pool = charge.pool.unwrap_or("");
            let (method_id, details, resource, allocated_tags) = match charge.pool {
                Some(pool) => allocation_columns(pool, part, elements, owners),
                None => Default::default(),
            };
            let (list, contracted) = (part.list.to_string(), part.contracted.to_string());
            let service = if f.provider_service.is_empty() {
                f.charge_category.as_str()
            } else {
                f.provider_service.as_str()
            };
            let provider = if f.provider.is_empty() {
                "Unknown"
            } else {
                f.provider.as_str()
            };
            let description = match charge.pool {
                Some(pool) => format!(
                    "{}'s share of a shared {service} charge: pool {pool}, {}",
                    part.service,
                    part.method.as_str()
                ),
                None => String::new(),
            };
            let method_label = if part.fallback_used {
                format!("fallback:{}", part.method.as_str())
            } else {
                part.method.as_str().to_string()
            };
            out.row(&[
                Cell::Text(&f.billing_account),
                Cell::Text(""),
                Cell::Text(&f.sub_account),
                Cell::Text(&period_start),
                Cell::Text(&period_end),
                Cell::Text(&day_start),
                Cell::Text(&day_end),
                Cell::Text(&f.charge_category),
                Cell::Text(""),
                Cell::Text(&description),
                Cell::Text(&f.currency),
                Cell::Number(&billed),
                Cell::Number(&effective),
                Cell::Number(&list),
                Cell::Number(&contracted),
                Cell::Number(""),
                Cell::Text(""),
                Cell::Text(provider),
                Cell::Text(provider),
                Cell::Text(provider),
                Cell::Text(service),
                Cell::Text(service_category(service)),
                Cell::Text(&f.resource_id),
                Cell::Text(&tags),
                Cell::Text(&method_id),
                Cell::Text(&details),
                Cell::Text(&resource),
                Cell::Text(&resource),
                Cell::Text(&allocated_tags),
                Cell::Text(&part.service),
                Cell::Text(pool),
                Cell::Text(rules_hash),
                Cell::Text(&method_label),
            ]);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_categories_come_from_the_service_name() {
        for (service, category) in [
            ("Amazon Elastic Compute Cloud", "Compute"),
            ("AmazonEC2", "Compute"),
            ("Amazon Relational Database Service", "Databases"),
            ("Amazon ElastiCache", "Databases"),
            ("Amazon Simple Storage Service", "Storage"),
            ("AmazonS3", "Storage"),
            ("Amazon Managed Streaming for Apache Kafka", "Analytics"),
            ("Elastic Load Balancing", "Networking"),
            ("AWS Key Management Service", "Identity"),
            ("AmazonCloudWatch", "Management and Governance"),
            ("Tax", "Other"),
            ("Marketplace widget", "Other"),
        ] {
            assert_eq!(service_category(service), category, "{service}");
        }
    }

    fn fact(dimension: &str, amount: i128) -> Fact {
        let mut tags = Tags::new();
        tags.insert("costsplit:split".into(), "idle".into());
        tags.insert(DIMENSION.into(), dimension.into());
        Fact {
            day: chrono::NaiveDate::from_ymd_opt(2026, 4, 1).expect("day"),
            billing_period: "2026-04".into(),
            billing_account: "1".into(),
            sub_account: "1".into(),
            provider: "AWS".into(),
            provider_service: "AmazonEC2".into(),
            resource_id: "i-1".into(),
            charge_category: "Usage".into(),
            tags: tags.into(),
            currency: "USD".into(),
            effective: Nanos(amount),
            billed: Nanos(amount),
            list: Nanos(amount),
            contracted: Nanos(amount),
            line_count: 1,
            estimated: false,
        }
    }

    fn part(service: &str, amount: i128) -> ChargePart {
        ChargePart {
            service: service.into(),
            method: Method::Proportional,
            fallback_used: false,
            basis: String::new(),
            amount: Nanos(amount),
            other_amount: Nanos(amount),
            list: Nanos(amount),
            contracted: Nanos(amount),
            ratio_ppb: 0,
        }
    }

    #[test]
    fn a_split_charge_has_one_element_per_dimension_summing_to_one() {
        let (cpu, memory) = (fact("cpu", 100), fact("memory", 200));
        let splits = vec![
            ChargeSplit {
                fact: &cpu,
                pool: Some("eks idle".into()),
                parts: vec![part("a", 67), part("b", 33)],
            },
            ChargeSplit {
                fact: &memory,
                pool: Some("eks idle".into()),
                parts: vec![part("a", 133), part("b", 67)],
            },
        ];
        let charges = charges(&splits);
        assert_eq!(charges.len(), 1, "one origin charge: the instance's idle");
        let charge = &charges[0];
        assert!(!charge.tags.contains_key(DIMENSION));
        let ratios: Vec<Vec<Element>> = charge.parts.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(
            ratios,
            vec![
                vec![(Some(0), 223_333_334), (Some(1), 443_333_333)],
                vec![(Some(0), 110_000_000), (Some(1), 223_333_333)],
            ]
        );
        let sum: i64 = ratios.iter().flatten().map(|(_, r)| r).sum();
        assert_eq!(sum, 1_000_000_000);
        assert_eq!(charge.parts[0].0.amount, Nanos(200));
        let csv = focus_csv(&splits, &Owners::new(), "h", true);
        assert!(
            csv.contains(r#"{""Elements"":[{""AllocatedRatio"":0.223333334,""UsageUnit"":""CPU""},{""AllocatedRatio"":0.443333333,""UsageUnit"":""Memory""}]"#),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 3, "a header and one row per service");
    }

    #[test]
    fn ratios_are_plain_json_numbers() {
        assert_eq!(ratio_number(1_000_000_000), "1");
        assert_eq!(ratio_number(333_333_334), "0.333333334");
        assert_eq!(ratio_number(500_000_000), "0.5");
        assert_eq!(method_id(Method::Usage, true), "costsplit/fallback-usage");
    }
}
