//! A seeded generator of a CUR 2.0 export with split cost allocation data (`costsplit generate
//! --split-cost`): three EKS clusters (prod, batch, staging) of node groups of different
//! instance types, on demand, reserved (`DiscountedUsage`) and Savings Plans covered (with
//! their negation lines); hourly pods of many services that are redeployed every day (new pod
//! names), a DaemonSet on every node and `kube-system` pods nobody maps; each pod's vCPU and
//! memory rows computed as AWS does (9:1 weights, the larger of requests and usage, the unused
//! capacity handed out by split ratio); and what AWS does not split: the EKS control plane
//! fee, EBS volumes (tagged with their cluster) and an EC2 instance outside any cluster. Same
//! seed and spec, same bytes. The `net_*` columns carry a 3% discount, so a reader that adds
//! both views is caught.

use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const COLUMNS: [&str; 24] = [
    "bill_billing_period_start_date",
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_usage_start_date",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_operation",
    "line_item_usage_type",
    "line_item_resource_id",
    "line_item_unblended_cost",
    "line_item_currency_code",
    "savings_plan_savings_plan_effective_cost",
    "reservation_effective_cost",
    "reservation_reservation_a_r_n",
    "resource_tags",
    "split_line_item_parent_resource_id",
    "split_line_item_reserved_usage",
    "split_line_item_actual_usage",
    "split_line_item_split_usage",
    "split_line_item_split_usage_ratio",
    "split_line_item_split_cost",
    "split_line_item_unused_cost",
    "split_line_item_net_split_cost",
    "split_line_item_net_unused_cost",
];

/// The cost columns (written as float64 in parquet).
const COSTS: [&str; 7] = [
    "line_item_unblended_cost",
    "savings_plan_savings_plan_effective_cost",
    "reservation_effective_cost",
    "split_line_item_split_cost",
    "split_line_item_unused_cost",
    "split_line_item_net_split_cost",
    "split_line_item_net_unused_cost",
];

type Row = [String; 24];

/// Makes a row of the hour from (column, value) pairs.
type RowOf<'a> = dyn Fn(&[(&str, String)]) -> Row + 'a;

const ACCOUNT: &str = "111122223333";

/// What to generate: about `rows` rows of the month of `month`, for `services` services.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    pub rows: usize,
    pub seed: u64,
    pub month: NaiveDate,
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pricing {
    OnDemand,
    Reserved,
    SavingsPlan,
}

struct Node {
    id: String,
    cluster: &'static str,
    vcpu: f64,
    mem: f64,
    price: f64,
    pricing: Pricing,
}

impl Node {
    /// The amortized hourly cost AWS splits.
    fn amortized(&self) -> f64 {
        match self.pricing {
            Pricing::OnDemand => self.price,
            Pricing::Reserved => self.price * 0.6,
            Pricing::SavingsPlan => self.price * 0.72,
        }
    }
}

struct Workload {
    cluster: &'static str,
    namespace: String,
    name: String,
    /// A pod label (`app`), for rules that split by label.
    app: String,
    replicas: usize,
    cpu: f64,
    mem: f64,
    daemon: bool,
}

const CLUSTERS: [&str; 3] = ["prod", "batch", "staging"];

/// (cluster, instance type, vCPU, GB, on-demand $/h, pricing, nodes per scale step).
const NODE_GROUPS: [(&str, &str, f64, f64, f64, Pricing, usize); 5] = [
    ("prod", "m5.xlarge", 4.0, 16.0, 0.192, Pricing::OnDemand, 2),
    ("prod", "r5.2xlarge", 8.0, 64.0, 0.504, Pricing::Reserved, 1),
    (
        "prod",
        "c5.2xlarge",
        8.0,
        16.0,
        0.34,
        Pricing::SavingsPlan,
        1,
    ),
    (
        "batch",
        "m5.2xlarge",
        8.0,
        32.0,
        0.384,
        Pricing::OnDemand,
        1,
    ),
    (
        "staging",
        "m5.xlarge",
        4.0,
        16.0,
        0.192,
        Pricing::OnDemand,
        1,
    ),
];

/// A month of split cost allocation data, generated row by row.
pub struct SplitMonth {
    spec: SplitSpec,
    nodes: Vec<Node>,
    workloads: Vec<Workload>,
    days: i64,
}

impl SplitMonth {
    pub fn new(spec: SplitSpec) -> SplitMonth {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        // Rows per hour at scale 1: 2 per pod (each service ~6 pods over the three
        // clusters; 6 DaemonSet and 6 coredns pods), 7 node lines, 7 others.
        let services = spec.services.len().max(1);
        let per_hour_at_one = 12 * services + 38;
        let month_days = days_in_month(spec.month);
        let scale = (spec.rows / (per_hour_at_one * 24 * month_days as usize)).max(1);
        let days = ((spec.rows / (per_hour_at_one * scale * 24)) as i64).clamp(1, month_days);
        let mut nodes = Vec::new();
        for (cluster, itype, vcpu, mem, price, pricing, count) in NODE_GROUPS {
            for n in 0..count * scale {
                nodes.push(Node {
                    id: format!("i-0{cluster}{}{n:04}", &itype[..2]),
                    cluster,
                    vcpu,
                    mem,
                    price,
                    pricing,
                });
            }
        }
        let mut workloads = Vec::new();
        for service in &spec.services {
            let mut add = |cluster: &'static str, namespace: String, name: String, app: String| {
                workloads.push(Workload {
                    cluster,
                    namespace,
                    name,
                    app,
                    replicas: rng.random_range(1..=3) * scale,
                    cpu: f64::from(rng.random_range(1..=8u32)) * 0.125,
                    mem: f64::from(rng.random_range(1..=8u32)) * 0.5,
                    daemon: false,
                })
            };
            add(
                "prod",
                service.clone(),
                format!("{service}-api"),
                service.clone(),
            );
            add(
                "batch",
                "jobs".into(),
                format!("{service}-worker"),
                format!("{service}-jobs"),
            );
            add(
                "staging",
                "staging".into(),
                service.clone(),
                service.clone(),
            );
        }
        for cluster in CLUSTERS {
            workloads.push(Workload {
                cluster,
                namespace: "kube-system".into(),
                name: "coredns".into(),
                app: "coredns".into(),
                replicas: 2,
                cpu: 0.1,
                mem: 0.07,
                daemon: false,
            });
            workloads.push(Workload {
                cluster,
                namespace: "kube-system".into(),
                name: "aws-node".into(),
                app: "aws-node".into(),
                replicas: 0,
                cpu: 0.025,
                mem: 0.05,
                daemon: true,
            });
        }
        SplitMonth {
            spec,
            nodes,
            workloads,
            days,
        }
    }

    fn first_day(&self) -> NaiveDate {
        self.spec.month.with_day(1).expect("the 1st")
    }

    /// Every row of one hour.
    fn hour(&self, hour: i64, rows: &mut Vec<Row>) {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.spec.seed ^ (hour as u64).wrapping_mul(0x9e37_79b9));
        let day = self.first_day() + Duration::days(hour / 24);
        let start = format!("{}T{:02}:00:00Z", day.format("%Y-%m-%d"), hour % 24);
        let period = format!("{}T00:00:00Z", self.first_day().format("%Y-%m-%d"));
        let row = |fields: &[(&str, String)]| -> Row {
            let mut row: Row = Default::default();
            row[0] = period.clone();
            row[1] = ACCOUNT.into();
            row[2] = ACCOUNT.into();
            row[3] = start.clone();
            row[10] = "USD".into();
            for (name, value) in fields {
                let i = COLUMNS.iter().position(|c| c == name).expect("a column");
                row[i] = value.clone();
            }
            row
        };
        let cost = |v: f64| format!("{v:.10}");
        for cluster in CLUSTERS {
            let nodes: Vec<&Node> = self.nodes.iter().filter(|n| n.cluster == cluster).collect();
            // Pods, placed on the least loaded node (by requested vCPU); redeployed daily.
            let mut placed: Vec<Vec<(String, &Workload, f64, f64)>> = vec![Vec::new(); nodes.len()];
            let mut load = vec![0.0f64; nodes.len()];
            for w in self.workloads.iter().filter(|w| w.cluster == cluster) {
                let count = if w.daemon { nodes.len() } else { w.replicas };
                for r in 0..count {
                    let n = if w.daemon {
                        r
                    } else {
                        (0..nodes.len())
                            .min_by(|&a, &b| {
                                (load[a] / nodes[a].vcpu).total_cmp(&(load[b] / nodes[b].vcpu))
                            })
                            .expect("a node")
                    };
                    load[n] += w.cpu;
                    let pod = format!(
                        "{}-{:09x}-{:05x}",
                        w.name,
                        (hour / 24 + 7) * 0x1_0203 % 0xf_ffff_ffff,
                        (r as i64 * 7919 + hour / 24) % 0xfffff
                    );
                    let cpu_used = w.cpu * rng.random_range(0.2..1.3);
                    let mem_used = w.mem * rng.random_range(0.5..1.1);
                    placed[n].push((pod, w, cpu_used, mem_used));
                }
            }
            for (node, pods) in nodes.iter().zip(&placed) {
                rows.extend(node_lines(node, &row, &cost));
                let unit = node.amortized() / (9.0 * node.vcpu + node.mem);
                let cpu_alloc: Vec<f64> = pods.iter().map(|(_, w, u, _)| w.cpu.max(*u)).collect();
                let mem_alloc: Vec<f64> = pods.iter().map(|(_, w, _, u)| w.mem.max(*u)).collect();
                for (dim, alloc, available, weight, usage_type) in [
                    ("cpu", &cpu_alloc, node.vcpu, 9.0, "USE1-EKS-EC2-vCPU-Hours"),
                    ("mem", &mem_alloc, node.mem, 1.0, "USE1-EKS-EC2-GB-Hours"),
                ] {
                    let sum: f64 = alloc.iter().sum();
                    let total = sum.max(available);
                    let unused_cost = (available - sum).max(0.0) * weight * unit;
                    for (i, (pod, w, cpu_used, mem_used)) in pods.iter().enumerate() {
                        let (reserved, used) = match dim {
                            "cpu" => (w.cpu, *cpu_used),
                            _ => (w.mem, *mem_used),
                        };
                        let split = alloc[i] / total * available * weight * unit;
                        let unused = if sum > 0.0 {
                            alloc[i] / sum * unused_cost
                        } else {
                            0.0
                        };
                        let arn = format!(
                            "arn:aws:eks:us-east-1:{ACCOUNT}:pod/{cluster}/{}/{pod}/{:08x}",
                            w.namespace,
                            (hour / 24) as u64 * 31 + i as u64
                        );
                        let tags = serde_json::json!({
                            "aws_eks_cluster_name": cluster,
                            "aws_eks_namespace": w.namespace,
                            "aws_eks_workload_name": w.name,
                            "aws_eks_node": format!("ip-10-0-{}.ec2.internal", node.id),
                            "user_app": w.app,
                            "user_pod_template_hash": &pod[w.name.len() + 1..w.name.len() + 10],
                        });
                        rows.push(row(&[
                            ("line_item_line_item_type", "Usage".into()),
                            ("line_item_product_code", "AmazonEC2".into()),
                            ("line_item_operation", "EKSPod-EC2".into()),
                            ("line_item_usage_type", usage_type.into()),
                            ("line_item_resource_id", arn),
                            ("line_item_unblended_cost", cost(0.0)),
                            ("resource_tags", tags.to_string()),
                            ("split_line_item_parent_resource_id", node.id.clone()),
                            ("split_line_item_reserved_usage", format!("{reserved:.4}")),
                            ("split_line_item_actual_usage", format!("{used:.4}")),
                            ("split_line_item_split_usage", format!("{:.4}", alloc[i])),
                            (
                                "split_line_item_split_usage_ratio",
                                format!("{:.6}", alloc[i] / total),
                            ),
                            ("split_line_item_split_cost", cost(split)),
                            ("split_line_item_unused_cost", cost(unused)),
                            ("split_line_item_net_split_cost", cost(split * 0.97)),
                            ("split_line_item_net_unused_cost", cost(unused * 0.97)),
                        ]));
                    }
                }
            }
            // What AWS does not split: the control plane and the cluster's volumes.
            let tags = serde_json::json!({ "user_cluster": cluster }).to_string();
            rows.push(row(&[
                ("line_item_line_item_type", "Usage".into()),
                ("line_item_product_code", "AmazonEKS".into()),
                ("line_item_operation", "CreateOperation".into()),
                (
                    "line_item_usage_type",
                    "USE1-AmazonEKS-Hours:perCluster".into(),
                ),
                (
                    "line_item_resource_id",
                    format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/{cluster}"),
                ),
                ("line_item_unblended_cost", cost(0.10)),
                ("resource_tags", tags.clone()),
            ]));
            rows.push(row(&[
                ("line_item_line_item_type", "Usage".into()),
                ("line_item_product_code", "AmazonEC2".into()),
                ("line_item_operation", "CreateVolume-Gp3".into()),
                ("line_item_usage_type", "USE1-EBS:VolumeUsage.gp3".into()),
                ("line_item_resource_id", format!("vol-0{cluster}")),
                ("line_item_unblended_cost", cost(0.0137)),
                ("resource_tags", tags),
            ]));
        }
        // An instance outside every cluster: never split.
        rows.push(row(&[
            ("line_item_line_item_type", "Usage".into()),
            ("line_item_product_code", "AmazonEC2".into()),
            ("line_item_operation", "RunInstances".into()),
            ("line_item_usage_type", "USE1-BoxUsage:t3.large".into()),
            ("line_item_resource_id", "i-0standalone".into()),
            ("line_item_unblended_cost", cost(0.0832)),
            (
                "resource_tags",
                serde_json::json!({ "user_service": "search" }).to_string(),
            ),
        ]));
    }

    fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.days * 24).flat_map(|hour| {
            let mut rows = Vec::new();
            self.hour(hour, &mut rows);
            rows
        })
    }

    /// Writes the export as CSV (gzip-compressed when the path ends in `.gz`); returns the
    /// number of line items.
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<usize> {
        let mut writer = super::csv_writer(path)?;
        writer.write_record(COLUMNS)?;
        let mut count = 0;
        for row in self.rows() {
            writer.write_record(&row)?;
            count += 1;
        }
        writer.flush()?;
        Ok(count)
    }

    /// Writes the export as parquet (costs as float64); returns the number of line items.
    pub fn write_parquet(&self, path: &Path) -> anyhow::Result<usize> {
        super::write_parquet(path, self.rows(), to_batch)
    }
}

/// An instance's own lines of one hour, as its pricing bills it.
fn node_lines(node: &Node, row: &RowOf<'_>, cost: &dyn Fn(f64) -> String) -> Vec<Row> {
    let tags = serde_json::json!({ "user_cluster": node.cluster, "user_team": "platform" });
    let line = |kind: &str, unblended: f64, extra: &[(&str, String)]| {
        let mut fields = vec![
            ("line_item_line_item_type", kind.to_string()),
            ("line_item_product_code", "AmazonEC2".to_string()),
            ("line_item_operation", "RunInstances".to_string()),
            ("line_item_usage_type", "USE1-BoxUsage".to_string()),
            ("line_item_resource_id", node.id.clone()),
            ("line_item_unblended_cost", cost(unblended)),
            ("resource_tags", tags.to_string()),
        ];
        fields.extend(extra.iter().cloned());
        row(&fields)
    };
    match node.pricing {
        Pricing::OnDemand => vec![line("Usage", node.price, &[])],
        Pricing::Reserved => vec![line(
            "DiscountedUsage",
            0.0,
            &[
                ("reservation_effective_cost", cost(node.amortized())),
                (
                    "reservation_reservation_a_r_n",
                    format!("arn:aws:ec2:us-east-1:{ACCOUNT}:reserved-instances/r-0001"),
                ),
            ],
        )],
        Pricing::SavingsPlan => vec![
            line(
                "SavingsPlanCoveredUsage",
                node.price,
                &[(
                    "savings_plan_savings_plan_effective_cost",
                    cost(node.amortized()),
                )],
            ),
            line("SavingsPlanNegation", -node.price, &[]),
        ],
    }
}

fn days_in_month(day: NaiveDate) -> i64 {
    let first = day.with_day(1).expect("the 1st");
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("a month");
    (next - first).num_days()
}

fn to_batch(rows: &[Row]) -> anyhow::Result<arrow_array::RecordBatch> {
    let mut columns = Vec::with_capacity(COLUMNS.len());
    for (i, name) in COLUMNS.iter().enumerate() {
        let column = if COSTS.contains(name) {
            super::float_column(rows, i)?
        } else {
            super::text_column(rows, i)
        };
        columns.push((*name, column));
    }
    super::batch(columns)
}
