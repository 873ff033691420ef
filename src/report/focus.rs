//! The allocated month as a FOCUS 1.3 cost and usage dataset, costsplit acting as a data
//! generator that splits shared charges: every fact is a charge (one day, one resource, one
//! tag set); a charge a pool took is replaced by its allocated charges, which carry the 1.3
//! split-cost-allocation columns and whose costs sum exactly to the origin charge. Pure.

use std::collections::BTreeMap;

use super::csv_out::{Cell, CsvOut};
use crate::allocate::{ChargePart, ChargeSplit};
use crate::model::{Method, UNALLOCATED};
use crate::money::Nanos;

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

/// A pool share's FOCUS allocation columns: the method id, the details JSON (ratio, pool,
/// basis), the allocated resource and its tags (service, team, cost center).
fn allocation_columns(
    pool: &str,
    part: &ChargePart,
    owners: &Owners,
) -> (String, String, String, String) {
    let mut details = format!(
        "{{\"Elements\":[{{\"AllocatedRatio\":{}}}],\"x_Pool\":{}",
        ratio_number(part.ratio_ppb),
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
    for split in splits {
        let f = split.fact;
        let (period_start, period_end) = period_bounds(&f.billing_period);
        let day_start = format!("{}T00:00:00Z", f.day);
        let day_end = format!("{}T00:00:00Z", f.day.succ_opt().unwrap_or(f.day));
        let tags = serde_json::to_string(&f.tags).expect("tags always serialise");
        for part in &split.parts {
            let (effective, billed) = if basis_is_effective {
                (part.amount, part.other_amount)
            } else {
                (part.other_amount, part.amount)
            };
            let (effective, billed) = (effective.to_string(), billed.to_string());
            let pool = split.pool.as_deref().unwrap_or("");
            let (method_id, details, resource, allocated_tags) = match &split.pool {
                Some(pool) => allocation_columns(pool, part, owners),
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
            let description = match &split.pool {
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

    #[test]
    fn ratios_are_plain_json_numbers() {
        assert_eq!(ratio_number(1_000_000_000), "1");
        assert_eq!(ratio_number(333_333_334), "0.333333334");
        assert_eq!(ratio_number(500_000_000), "0.5");
        assert_eq!(method_id(Method::Usage, true), "costsplit/fallback-usage");
    }
}
