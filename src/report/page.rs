//! The web page for people: one month of cost for everyone, a team or a service, as
//! server-rendered HTML. Pure: the job gathers a `View`, this renders it. The chart is inline
//! SVG drawn here (stacked daily bars with a `<title>` per segment), so the page needs no
//! script, no CDN and no build step; every number is also in a table.

use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::money::{human, Nanos};
use crate::report::digest::percent_of_ppb;
use crate::report::explain::Explanation;
use crate::report::statement::ratio_text;

/// What the page is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Team(String),
    Service(String),
}

/// One row of a ranking: a team (on the overview) or a service (on a team's page). `amount`
/// is the statement's line (rounded to the minor unit the way finance's statement is);
/// `previous` the same days of the month before, exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub name: String,
    pub team: String,
    pub amount: Nanos,
    pub exact: Nanos,
    pub previous: Nanos,
    pub currency: String,
}

/// Daily amounts stacked by series (a team, `direct` or a pool), in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chart {
    pub currency: String,
    pub days: Vec<NaiveDate>,
    /// (series, amount per day in `days`' order).
    pub series: Vec<(String, Vec<Nanos>)>,
}

/// An open alert, as `alerts list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub kind: String,
    /// Empty for a budget's alert, which is its team's.
    pub service: String,
    pub team: String,
    pub period: String,
    pub summary: String,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct View {
    pub scope: Scope,
    /// `YYYY-MM`, and the months before and after it that have allocations.
    pub month: String,
    pub previous_month: Option<String>,
    pub next_month: Option<String>,
    /// The last allocated day of the month: the comparison takes the same days of the month
    /// before.
    pub through: NaiveDate,
    pub rules_hash: String,
    /// Days of the month that are still estimated (the provider may restate them).
    pub estimated: Vec<NaiveDate>,
    /// Per currency, the statement's total.
    pub totals: Vec<(String, Nanos)>,
    pub chart: Chart,
    pub ranking: Vec<Ranked>,
    pub alerts: Vec<OpenAlert>,
    /// A service's page: where its money came from, per currency.
    pub explanation: Vec<Explanation>,
}

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as one URL path segment (or query value).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn team_link(team: &str, month: &str) -> String {
    if team.is_empty() {
        return "<span class=\"muted\">no team</span>".to_string();
    }
    format!(
        "<a href=\"/teams/{}?month={month}\">{}</a>",
        encode(team),
        escape(team)
    )
}

fn service_link(service: &str, month: &str) -> String {
    format!(
        "<a href=\"/services/{}?month={month}\">{}</a>",
        encode(service),
        escape(service)
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;color:#1d2433}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}\
nav{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap;border-bottom:1px solid #dde;padding-bottom:.5rem}\
table{border-collapse:collapse;width:100%}th,td{padding:.3rem .6rem;border-bottom:1px solid #eef;text-align:left}\
th{white-space:nowrap}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7385}\
.up{color:#b42318}.down{color:#067647}.warn{background:#fff4e5;border:1px solid #f5b971;padding:.6rem .8rem;border-radius:4px}\
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}\
svg{width:100%;height:auto}footer{margin-top:2rem;font-size:.85rem}";

/// Fixed colours, one per series in the chart's order.
const PALETTE: [&str; 10] = [
    "#2f6fde", "#e8833a", "#3aa57a", "#c2417a", "#8a63d2", "#c9a227", "#4fa3c7", "#a0522d",
    "#6b7385", "#d94f4f",
];

/// A page: `title`, the navigation line, then `body`.
fn page(title: &str, nav: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
<title>{} · costsplit</title><style>{STYLE}</style></head>\n<body>\n<nav>{nav}</nav>\n{body}\n\
<footer class=\"muted\">costsplit · exact per-service cost; the same figures as finance's statement and <code>costsplit explain</code>. The same data as JSON for your IDP: <code>/api/v1/costs</code>, <code>/api/v1/cost-insights/…</code>, <code>/allocation/compute</code>.</footer>\n</body></html>\n",
        escape(title)
    )
}

/// A page that says what went wrong and what to do.
pub fn message_page(title: &str, message: &str) -> String {
    page(
        title,
        "<a href=\"/\">costsplit</a>",
        &format!(
            "<h1>{}</h1>\n<p id=\"message\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

fn change_cell(now: Nanos, before: Nanos) -> String {
    if before.0 == 0 {
        return if now.0 == 0 {
            "<td class=\"n muted\">-</td>".to_string()
        } else {
            "<td class=\"n up\">new</td>".to_string()
        };
    }
    let ppm = (now.0 - before.0) * 1_000_000 / before.0.abs();
    let (class, sign) = match ppm.signum() {
        1 => ("up", "+"),
        -1 => ("down", "-"),
        _ => ("muted", ""),
    };
    let ppm = ppm.abs();
    format!(
        "<td class=\"n {class}\">{sign}{}.{}%</td>",
        ppm / 10_000,
        (ppm % 10_000) / 1_000
    )
}

/// The stacked daily bars, as SVG, with a legend and a `<title>` on every segment.
fn chart_svg(chart: &Chart) -> String {
    if chart.days.is_empty() {
        return "<p class=\"muted\">No days to chart.</p>".to_string();
    }
    let c = chart.currency.as_str();
    let day_totals: Vec<i128> = (0..chart.days.len())
        .map(|i| chart.series.iter().map(|(_, v)| v[i].0.max(0)).sum())
        .collect();
    let top = day_totals.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, left, bottom) = (960.0_f64, 260.0_f64, 70.0_f64, 24.0_f64);
    let plot = height - bottom - 8.0;
    let step = (width - left) / chart.days.len() as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"daily cost in {}\">",
        escape(c)
    );
    for tick in 0..=4 {
        let value = Nanos(top * tick / 4);
        let y = 8.0 + plot - plot * tick as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{width}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eef\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7385\">{}</text>",
            left - 6.0,
            y + 4.0,
            escape(&human(value, c, false))
        );
    }
    for (i, day) in chart.days.iter().enumerate() {
        let x = left + step * i as f64 + step * 0.12;
        let mut y = 8.0 + plot;
        for (k, (name, values)) in chart.series.iter().enumerate() {
            let amount = values[i].0.max(0);
            if amount == 0 {
                continue;
            }
            let h = plot * amount as f64 / top as f64;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.2}\" width=\"{:.1}\" height=\"{h:.2}\" fill=\"{}\"><title>{day} {}: {}</title></rect>",
                step * 0.76,
                PALETTE[k % PALETTE.len()],
                escape(name),
                escape(&human(values[i], c, false))
            );
        }
        if chart.days.len() <= 10 || i % 5 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#6b7385\">{}</text>",
                x + step * 0.38,
                height - 6.0,
                day.format("%d")
            );
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::from("<div class=\"legend\">");
    for (k, (name, values)) in chart.series.iter().enumerate() {
        let sum: Nanos = values.iter().copied().sum();
        let _ = write!(
            legend,
            "<span><i style=\"background:{}\"></i>{} {}</span>",
            PALETTE[k % PALETTE.len()],
            escape(name),
            escape(&human(sum, c, false))
        );
    }
    legend.push_str("</div>");
    format!("<figure>{svg}{legend}</figure>")
}

fn ranking_table(view: &View, services: bool) -> String {
    let month = view.month.as_str();
    let mut out = format!(
        "<table id=\"ranking\"><thead><tr><th>#</th><th>{}</th><th class=\"n\">{month}</th><th class=\"n\">same days before</th><th class=\"n\">change</th><th class=\"n\">moved</th></tr></thead><tbody>",
        if services { "service" } else { "team" },
    );
    for (i, r) in view.ranking.iter().enumerate() {
        let c = r.currency.as_str();
        let name = if services {
            service_link(&r.name, month)
        } else if r.name.is_empty() {
            team_link("", month)
        } else {
            team_link(&r.name, month)
        };
        let _ = write!(
            out,
            "<tr data-name=\"{}\"><td class=\"muted\">{}</td><td>{name}</td><td class=\"n amount\" data-currency=\"{}\">{}</td><td class=\"n muted\">{}</td>{}<td class=\"n\">{}</td></tr>",
            escape(&r.name),
            i + 1,
            escape(c),
            escape(&human(r.amount, c, false)),
            escape(&human(r.previous, c, false)),
            change_cell(r.exact, r.previous),
            escape(&human(r.exact - r.previous, c, true)),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn alerts_table(view: &View) -> String {
    if view.alerts.is_empty() {
        return "<p class=\"muted\" id=\"alerts\">No open alerts.</p>".to_string();
    }
    let mut out = String::from("<table id=\"alerts\"><thead><tr><th>kind</th><th>for</th><th>period</th><th>alert</th><th>in Slack</th></tr></thead><tbody>");
    for a in &view.alerts {
        let subject = match a.service.as_str() {
            "" => team_link(&a.team, &view.month),
            service => service_link(service, &view.month),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            escape(&a.kind),
            subject,
            escape(&a.period),
            escape(&a.summary),
            escape(&a.state)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn explanation_section(view: &View) -> String {
    let mut out = String::new();
    for e in &view.explanation {
        let c = e.currency.as_str();
        let _ = write!(
            out,
            "<h2>Where {} came from ({})</h2>\n<table id=\"explain-{}\"><thead><tr><th>part</th><th>method</th><th>basis of the share</th><th class=\"n\">ratio</th><th class=\"n\">amount</th></tr></thead><tbody>",
            escape(&human(e.total, c, false)),
            escape(c),
            escape(&c.to_ascii_lowercase()),
        );
        for (provider, amount) in &e.direct {
            let _ = write!(
                out,
                "<tr><td>direct: {}</td><td>tag</td><td class=\"muted\">its own resources</td><td class=\"n\"></td><td class=\"n\">{}</td></tr>",
                escape(provider),
                escape(&human(*amount, c, false))
            );
        }
        for p in &e.pools {
            let (low, high) = (percent_of_ppb(p.min_ppb), percent_of_ppb(p.max_ppb));
            let range = if low == high {
                format!("{low} every day")
            } else {
                format!("daily {low} to {high}")
            };
            let basis = if p.basis.is_empty() {
                String::new()
            } else {
                format!("; last day: {}", p.basis)
            };
            let _ = write!(
                out,
                "<tr class=\"pool\"><td>pool: {}</td><td>{}</td><td>{} of {}, {} day(s) {} to {}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&p.pool),
                escape(&p.method),
                escape(&range),
                escape(&human(p.pool_total, c, false)),
                p.days,
                p.first_day,
                p.last_day,
                escape(&basis),
                escape(&ratio_text(p.share, p.pool_total)),
                escape(&human(p.share, c, false))
            );
        }
        let _ = write!(
            out,
            "<tr><th>total</th><td></td><td class=\"muted\">direct {} + shared {}</td><td></td><th class=\"n\">{}</th></tr></tbody></table>",
            escape(&human(e.direct_total(), c, false)),
            escape(&human(e.shared_total(), c, false)),
            escape(&human(e.total, c, false))
        );
    }
    out
}

/// The page of `view`.
pub fn render(view: &View) -> String {
    let month = view.month.as_str();
    let (title, here, crumbs) = match &view.scope {
        Scope::All => ("All teams".to_string(), String::new(), String::new()),
        Scope::Team(t) => (
            format!("Team {t}"),
            format!("/teams/{}", encode(t)),
            format!(" › {}", team_link(t, month)),
        ),
        Scope::Service(s) => (
            format!("Service {s}"),
            format!("/services/{}", encode(s)),
            format!(" › {}", service_link(s, month)),
        ),
    };
    let path = if here.is_empty() { "/" } else { here.as_str() };
    let month_link = |m: &Option<String>, label: &str, rel: &str| match m {
        Some(m) => format!("<a rel=\"{rel}\" href=\"{path}?month={m}\">{label}</a>"),
        None => format!("<span class=\"muted\">{label}</span>"),
    };
    let nav = format!(
        "<strong><a href=\"/?month={month}\">costsplit</a>{crumbs}</strong><span>{} <b id=\"month\">{month}</b> {}</span><span class=\"muted\">through {} · rules {}</span>",
        month_link(&view.previous_month, "‹ previous", "prev"),
        month_link(&view.next_month, "next ›", "next"),
        view.through,
        escape(&view.rules_hash)
    );
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    let totals: Vec<String> = view
        .totals
        .iter()
        .map(|(c, n)| {
            format!(
                "<b class=\"total\" data-currency=\"{}\">{}</b>",
                escape(c),
                escape(&human(*n, c, false))
            )
        })
        .collect();
    let _ = writeln!(body, "<p>{month}: {}</p>", totals.join(" and "));
    if let (Some(first), Some(last)) = (view.estimated.first(), view.estimated.last()) {
        let _ = writeln!(
            body,
            "<p class=\"warn\" id=\"estimated\">{} day(s) of this month ({first} to {last}) are still estimated: the provider may restate them, and these figures change when it does.</p>",
            view.estimated.len()
        );
    }
    let stacked = match view.scope {
        Scope::All => "by team",
        _ => "direct and each shared pool",
    };
    let _ = writeln!(
        body,
        "<h2>Daily cost, {stacked} ({})</h2>\n{}",
        escape(&view.chart.currency),
        chart_svg(&view.chart)
    );
    match view.scope {
        Scope::All => {
            let _ = writeln!(
                body,
                "<h2>Teams this month</h2>\n{}",
                ranking_table(view, false)
            );
        }
        Scope::Team(_) => {
            let _ = writeln!(
                body,
                "<h2>The team's services, most expensive first</h2>\n{}",
                ranking_table(view, true)
            );
        }
        Scope::Service(_) => body.push_str(&explanation_section(view)),
    }
    let _ = writeln!(body, "<h2>Open alerts</h2>\n{}", alerts_table(view));
    page(&format!("{title} {month}"), &nav, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_encoded() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(encode("team a/b"), "team%20a%2Fb");
    }

    #[test]
    fn estimated_days_are_named_on_top() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2025, 3, d).expect("day");
        let view = View {
            scope: Scope::Team("<core>".into()),
            month: "2025-03".into(),
            previous_month: None,
            next_month: None,
            through: day(3),
            rules_hash: "abc".into(),
            estimated: vec![day(2), day(3)],
            totals: vec![("USD".into(), Nanos(1_230_000_000))],
            chart: Chart {
                currency: "USD".into(),
                days: vec![day(1), day(2), day(3)],
                series: vec![("direct".into(), vec![Nanos(1); 3])],
            },
            ranking: Vec::new(),
            alerts: Vec::new(),
            explanation: Vec::new(),
        };
        let html = render(&view);
        assert!(
            html.contains("2 day(s) of this month (2025-03-02 to 2025-03-03) are still estimated")
        );
        assert!(html.contains("Team &lt;core&gt;") && !html.contains("<core>"));
        assert!(html.contains("href=\"/teams/%3Ccore%3E?month=2025-03\""));
        assert!(html.contains("$1.23"));
    }

    #[test]
    fn change_reads_as_percent_with_one_decimal() {
        assert_eq!(
            change_cell(Nanos(1_500), Nanos(1_000)),
            "<td class=\"n up\">+50.0%</td>"
        );
        assert_eq!(
            change_cell(Nanos(880), Nanos(1_000)),
            "<td class=\"n down\">-12.0%</td>"
        );
        assert_eq!(
            change_cell(Nanos(995), Nanos(1_000)),
            "<td class=\"n down\">-0.5%</td>"
        );
        assert_eq!(
            change_cell(Nanos(5), Nanos(0)),
            "<td class=\"n up\">new</td>"
        );
    }
}
