//! The repository suite: every test runs on SQLite and on real PostgreSQL.

use costsplit::model::{Allocation, CostBasis, Fact, Method, Tags};
use costsplit::money::Nanos;
use costsplit::store::{FactScope, ImportRecord, RunRecord, Store, SyncRun, SyncStatus, Table};

use crate::support::{day, Kind, TestStore, BOTH, NOW};

fn fact(d: &str, period: &str, resource: &str, amount: i64) -> Fact {
    let mut tags = Tags::new();
    tags.insert("service".into(), "checkout-api".into());
    Fact {
        day: day(d),
        billing_period: period.into(),
        billing_account: "payer".into(),
        sub_account: "acct-1".into(),
        provider: "AWS".into(),
        provider_service: "Amazon Elastic Compute Cloud".into(),
        resource_id: resource.into(),
        charge_category: "Usage".into(),
        tags: tags.into(),
        currency: "USD".into(),
        effective: Nanos(amount.into()),
        billed: Nanos(i128::from(amount) * 2),
        list: Nanos(i128::from(amount) * 2),
        contracted: Nanos(i128::from(amount) * 2),
        line_count: 3,
        estimated: false,
    }
}

fn record(period: &str) -> ImportRecord {
    ImportRecord {
        created_at: NOW.stamp(),
        source: costsplit::model::ImportSource::Files(costsplit::model::BillingSchema::Focus),
        files: vec!["test.csv".into()],
        scope: FactScope::Periods(vec![(period.into(), "payer".into())]),
        line_items: 3,
    }
}

async fn facts_round_trip_and_reimport_replaces_the_period(kind: Kind) {
    let t = TestStore::new(kind).await;
    let march: Vec<Fact> = (0..2500)
        .map(|i| fact("2025-03-02", "2025-03", &format!("i-{i:05}"), i - 100))
        .collect();
    let april = vec![fact("2025-04-01", "2025-04", "i-april", 7)];
    t.store
        .replace_facts(&record("2025-03"), &march)
        .await
        .expect("import march");
    t.store
        .replace_facts(&record("2025-04"), &april)
        .await
        .expect("import april");
    let back = t
        .store
        .facts(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("read");
    assert_eq!(back, march, "{kind:?}: facts come back as written");

    // The same period again replaces it; it never doubles, and other periods stay.
    let again = vec![fact("2025-03-05", "2025-03", "i-new", 42)];
    t.store
        .replace_facts(&record("2025-03"), &again)
        .await
        .expect("re-import");
    let totals = t
        .store
        .billed_totals(day("2025-03-01"), day("2025-04-30"), CostBasis::Effective)
        .await
        .expect("totals");
    assert_eq!(totals.get("USD"), Some(&Nanos(42 + 7)), "{kind:?}");
    let billed = t
        .store
        .billed_totals(day("2025-03-01"), day("2025-04-30"), CostBasis::Billed)
        .await
        .expect("totals");
    assert_eq!(billed.get("USD"), Some(&Nanos(84 + 14)), "{kind:?}");
    assert_eq!(t.store.count(Table::Imports).await.expect("count"), 3);
}

#[tokio::test]
async fn facts_round_trip_and_reimport_replaces_the_period_on_both_stores() {
    for kind in BOTH {
        facts_round_trip_and_reimport_replaces_the_period(kind).await;
    }
}

async fn an_import_failing_half_way_leaves_the_store_as_it_was(kind: Kind) {
    let t = TestStore::new(kind).await;
    let before = vec![fact("2025-03-01", "2025-03", "i-1", 10)];
    t.store
        .replace_facts(&record("2025-03"), &before)
        .await
        .expect("first import");
    // A trigger rejects one row deep in the second batch of the next import.
    match kind {
        Kind::Sqlite => t
            .store
            .execute_for_tests(
                "CREATE TRIGGER boom BEFORE INSERT ON billing_facts WHEN NEW.resource_id = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END",
            )
            .await
            .expect("trigger"),
        Kind::Postgres => {
            t.store
                .execute_for_tests(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN
                     IF NEW.resource_id = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                )
                .await
                .expect("function");
            t.store
                .execute_for_tests("CREATE TRIGGER boom BEFORE INSERT ON billing_facts FOR EACH ROW EXECUTE FUNCTION boom()")
                .await
                .expect("trigger");
        }
    }
    let mut next: Vec<Fact> = (0..1500)
        .map(|i| fact("2025-03-02", "2025-03", &format!("i-{i}"), 1))
        .collect();
    next.push(fact("2025-03-02", "2025-03", "boom", 1));
    let err = t
        .store
        .replace_facts(&record("2025-03"), &next)
        .await
        .expect_err("the trigger fails the import");
    assert!(format!("{err:#}").contains("boom"), "{err:#}");
    let after = t
        .store
        .facts(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("read");
    assert_eq!(
        after, before,
        "{kind:?}: nothing of the failed import is visible"
    );
    assert_eq!(t.store.count(Table::Imports).await.expect("count"), 1);
}

#[tokio::test]
async fn an_import_failing_half_way_leaves_the_store_as_it_was_on_both_stores() {
    for kind in BOTH {
        an_import_failing_half_way_leaves_the_store_as_it_was(kind).await;
    }
}

fn allocation(d: &str, service: &str, pool: &str, amount: i64) -> Allocation {
    Allocation {
        day: day(d),
        service: service.into(),
        team: "t".into(),
        cost_center: "cc".into(),
        pool: pool.into(),
        provider_service: if pool.is_empty() {
            "AmazonEC2".into()
        } else {
            String::new()
        },
        method: if pool.is_empty() {
            Method::Direct
        } else {
            Method::Equal
        },
        fallback_used: !pool.is_empty(),
        ratio_ppb: 500_000_000,
        amount: Nanos(amount.into()),
        currency: "USD".into(),
        basis: String::new(),
    }
}

async fn allocations_replace_their_range_and_total_by_service(kind: Kind) {
    let t = TestStore::new(kind).await;
    let run = |from: &str, to: &str| RunRecord {
        created_at: NOW.stamp(),
        from: day(from),
        to: day(to),
        rules_hash: "abc".into(),
        basis: CostBasis::Effective,
        facts: 1,
        billed: Nanos(0),
        facts_mark: None,
    };
    let first = vec![
        allocation("2025-03-01", "a", "", 100),
        allocation("2025-03-01", "a", "db", 5),
        allocation("2025-03-02", "b", "db", 7),
        allocation("2025-04-01", "b", "", 1),
    ];
    t.store
        .replace_allocations(&run("2025-03-01", "2025-04-30"), &first)
        .await
        .expect("store");
    let second = vec![allocation("2025-03-02", "a", "", 9)];
    t.store
        .replace_allocations(&run("2025-03-01", "2025-03-31"), &second)
        .await
        .expect("store");
    let march = t
        .store
        .allocations(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("read");
    assert_eq!(march, second, "{kind:?}: the March range was replaced");
    let totals = t
        .store
        .service_totals(day("2025-03-01"), day("2025-04-30"))
        .await
        .expect("totals");
    let summary: Vec<(String, i128, i128)> = totals
        .iter()
        .map(|s| (s.service.clone(), s.direct.0, s.shared.0))
        .collect();
    assert_eq!(
        summary,
        vec![("a".into(), 9, 0), ("b".into(), 1, 0)],
        "{kind:?}"
    );
    assert_eq!(
        t.store.count(Table::AllocationRuns).await.expect("count"),
        2
    );
}

#[tokio::test]
async fn allocations_replace_their_range_and_total_by_service_on_both_stores() {
    for kind in BOTH {
        allocations_replace_their_range_and_total_by_service(kind).await;
    }
}

#[tokio::test]
async fn a_bad_store_url_fails_without_showing_the_password() {
    let err = costsplit::store::Store::connect("postgres://app:hunter2@127.0.0.1:1/nope")
        .await
        .err()
        .expect("nothing listens on port 1");
    let message = format!("{err:#}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("***"), "{message}");
}

async fn a_sync_window_replaces_one_accounts_days_with_its_run_record(kind: Kind) {
    let t = TestStore::new(kind).await;
    let mut other = fact("2025-03-02", "2025-03", "", 5);
    other.billing_account = "member".into();
    let before = [
        fact("2025-03-01", "2025-03", "", 1),
        fact("2025-03-02", "2025-03", "", 2),
        fact("2025-03-03", "2025-03", "", 3),
        other.clone(),
    ];
    t.store
        .replace_facts(&record("2025-03"), &before[..3])
        .await
        .expect("payer");
    let member = ImportRecord {
        scope: FactScope::Periods(vec![("2025-03".into(), "member".into())]),
        ..record("2025-03")
    };
    t.store
        .replace_facts(&member, &before[3..])
        .await
        .expect("member");

    let window = |from: &str, to: &str| ImportRecord {
        source: costsplit::model::ImportSource::CostExplorer,
        files: Vec::new(),
        scope: FactScope::Days {
            account: "payer".into(),
            from: day(from),
            to: day(to),
        },
        ..record("2025-03")
    };
    let run = |status: SyncStatus, calls: i64| SyncRun {
        created_at: NOW.stamp(),
        source: costsplit::model::ImportSource::CostExplorer,
        account: "payer".into(),
        from: day("2025-03-02"),
        to: day("2025-03-03"),
        status,
        calls,
        cost: Nanos(i128::from(calls) * 10_000_000),
        facts: 1,
        estimated_days: 1,
        message: String::new(),
        fingerprint: Some("fp-1".into()),
        // An engine's query, as an Athena sync records it: it round-trips on both stores.
        query_id: Some("9d1e4c1a-athena".into()),
        bytes_scanned: 12_884_901_888,
    };
    let mut restated = fact("2025-03-02", "2025-03", "", 20);
    restated.estimated = true;
    t.store
        .commit_sync(
            &window("2025-03-02", "2025-03-03"),
            std::slice::from_ref(&restated),
            &run(SyncStatus::Ok, 2),
        )
        .await
        .expect("sync");
    let after = t
        .store
        .facts(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("facts");
    // Day 1 of payer and the member account are untouched; days 2-3 of payer are the window.
    assert_eq!(after, vec![before[0].clone(), other, restated], "{kind:?}");
    assert_eq!(
        t.store
            .estimated_days(day("2025-03-01"), day("2025-03-31"))
            .await
            .expect("estimated"),
        vec![day("2025-03-02")]
    );

    t.store
        .record_sync_without_facts(&SyncRun {
            message: "throttled".into(),
            ..run(SyncStatus::Failed, 3)
        })
        .await
        .expect("failure recorded");
    let runs = t.store.sync_runs(10).await.expect("runs");
    assert_eq!(runs.len(), 2, "{kind:?}");
    assert_eq!(runs[0].status, SyncStatus::Failed);
    assert_eq!(runs[0].calls, 3);
    assert_eq!(runs[1], run(SyncStatus::Ok, 2));
    assert_eq!(t.store.count(Table::SyncRuns).await.expect("count"), 2);
    // What the store holds is the last run that imported, not the last run.
    assert_eq!(
        t.store
            .last_imported_fingerprint(
                costsplit::model::ImportSource::CostExplorer,
                "payer",
                day("2025-03-02")
            )
            .await
            .expect("fingerprint"),
        Some("fp-1".to_string()),
        "{kind:?}"
    );
    assert_eq!(
        t.store
            .last_imported_fingerprint(
                costsplit::model::ImportSource::CostExplorer,
                "payer",
                day("2025-03-01")
            )
            .await
            .expect("fingerprint"),
        None
    );
}

#[tokio::test]
async fn a_sync_window_replaces_one_accounts_days_with_its_run_record_on_both() {
    for kind in BOTH {
        a_sync_window_replaces_one_accounts_days_with_its_run_record(kind).await;
    }
}

/// Two syncs of one window committing at once (two store connections, as two processes
/// have): one copy of the window, whichever commits last.
async fn two_syncs_of_one_window_at_once_leave_one_copy(kind: Kind) {
    let t = TestStore::new(kind).await;
    let window = ImportRecord {
        scope: FactScope::Days {
            account: "payer".into(),
            from: day("2025-03-01"),
            to: day("2025-03-02"),
        },
        ..record("2025-03")
    };
    let facts: Vec<Fact> = (0..3000)
        .map(|i| fact("2025-03-01", "2025-03", &format!("r-{i}"), 1_000))
        .collect();
    let run = SyncRun {
        created_at: NOW.stamp(),
        source: costsplit::model::ImportSource::CostExplorer,
        account: "payer".into(),
        from: day("2025-03-01"),
        to: day("2025-03-02"),
        status: SyncStatus::Ok,
        calls: 1,
        cost: Nanos(10_000_000),
        facts: 3000,
        estimated_days: 0,
        message: String::new(),
        fingerprint: None,
        query_id: None,
        bytes_scanned: 0,
    };
    for _ in 0..3 {
        let (a, b) = (
            Store::connect(&t.store_url()).await.expect("store"),
            Store::connect(&t.store_url()).await.expect("store"),
        );
        let (x, y) = tokio::join!(
            a.commit_sync(&window, &facts, &run),
            b.commit_sync(&window, &facts, &run)
        );
        x.expect("first sync");
        y.expect("second sync");
        a.close().await;
        b.close().await;
    }
    let stored = t
        .store
        .facts(day("2025-03-01"), day("2025-03-02"))
        .await
        .expect("facts");
    assert_eq!(stored.len(), 3000, "{kind:?}: one copy of the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_of_one_window_at_once_leave_one_copy_on_both() {
    for kind in BOTH {
        two_syncs_of_one_window_at_once_leave_one_copy(kind).await;
    }
}

/// A store written before tag sets existed (facts carried their tags JSON) keeps every
/// fact's tags through the migration that stores each tag set once, on both stores; a new
/// import of the same tags refers to the migrated set.
#[tokio::test]
async fn tags_stored_before_tag_sets_survive_the_migration_on_both_stores() {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    for kind in BOTH {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("costsplit_migrate_{}", std::process::id());
        let admin = crate::support::pg_admin_url();
        let url = match kind {
            Kind::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin");
                conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                    .await
                    .expect("drop");
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create");
                let (base, _) = admin.rsplit_once('/').expect("a database in the URL");
                format!("{base}/{name}")
            }
        };
        // The schema as migration 9 left it, with facts as they were stored then.
        let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
        let mut migrator = match kind {
            Kind::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Kind::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.migrations = std::borrow::Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version < 10)
                .cloned()
                .collect(),
        );
        migrator.run(&pool).await.expect("migrations 1-9");
        sqlx::query("INSERT INTO imports (created_at, source, files, periods, line_items, facts, effective_nanos, billed_nanos) VALUES ('t', 'focus', 'f', 'p', 3, 3, 0, 0)")
            .execute(&pool)
            .await
            .expect("import");
        for (resource, tags) in [
            ("i-1", r#"{"service":"checkout-api"}"#),
            ("i-2", r#"{"service":"checkout-api"}"#),
            ("i-3", ""),
        ] {
            sqlx::query("INSERT INTO billing_facts (day, billing_period, billing_account, sub_account, provider, provider_service, resource_id, charge_category, tags, currency, effective_units, effective_nanos, billed_units, billed_nanos, line_count, estimated, import_id) VALUES ('2025-03-01', '2025-03', 'payer', 'acct-1', 'AWS', 'Amazon Elastic Compute Cloud', $1, 'Usage', $2, 'USD', 0, 10, 0, 20, 3, 0, 1)")
                .bind(resource)
                .bind(tags)
                .execute(&pool)
                .await
                .expect("fact");
        }
        pool.close().await;
        let store = Store::connect(&url).await.expect("the store migrates");
        let facts = store
            .facts(day("2025-03-01"), day("2025-03-31"))
            .await
            .expect("facts");
        let tags: Vec<(String, Option<String>)> = facts
            .iter()
            .map(|f| (f.resource_id.to_string(), f.tags.get("service").cloned()))
            .collect();
        assert_eq!(
            tags,
            [
                ("i-1".to_string(), Some("checkout-api".to_string())),
                ("i-2".to_string(), Some("checkout-api".to_string())),
                ("i-3".to_string(), None),
            ],
            "{kind:?}"
        );
        // A new import with the same tags refers to the migrated set.
        let mut next = facts.clone();
        next[0].billing_period = "2025-04".into();
        next[0].day = day("2025-04-01");
        store
            .replace_facts(&record("2025-04"), &next[..1])
            .await
            .expect("import");
        let again = store
            .facts(day("2025-04-01"), day("2025-04-30"))
            .await
            .expect("facts");
        assert_eq!(again[0].tags, facts[0].tags, "{kind:?}");
        store.close().await;
        if kind == Kind::Postgres {
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin");
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .expect("drop");
        }
    }
}
