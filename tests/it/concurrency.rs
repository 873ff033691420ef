//! Commands started together, as a scheduled run overlapping a person's run would be: real
//! `costsplit` processes against one store, SQLite and PostgreSQL. Whatever the interleaving,
//! the store holds exactly one copy of each month and of each allocation.

use std::path::{Path, PathBuf};
use std::process::Output;

use costsplit::demo::generate::{GenSpec, World};
use costsplit::store::Store;

use crate::support::{day, repo_rules, Kind, TestStore, BOTH};

/// Starts `copies` processes with `args` at once and waits for all of them.
fn together(copies: usize, store_url: &str, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..copies)
        .map(|_| {
            crate::support::costsplit(std::path::Path::new("."))
                .store(store_url)
                .rules(&repo_rules())
                .command(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("the binary starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("the binary runs"))
        .collect()
}

fn all_succeed(outputs: &[Output], what: &str) {
    for out in outputs {
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// (facts, billed nanos, allocations, allocated nanos) for March 2025.
async fn march(url: &str) -> (usize, i128, usize, i128) {
    let store = Store::connect(url).await.expect("store");
    let facts = store
        .facts(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("facts");
    let allocations = store
        .allocations(day("2025-03-01"), day("2025-03-31"))
        .await
        .expect("allocations");
    store.close().await;
    (
        facts.len(),
        facts.iter().map(|f| f.effective.0).sum(),
        allocations.len(),
        allocations.iter().map(|a| a.amount.0).sum(),
    )
}

async fn overlapping_imports_and_allocates_leave_one_copy(kind: Kind, file: &Path) {
    let t = TestStore::new(kind).await;
    let url = t.store_url();
    t.store.close().await;
    let file = file.to_str().expect("utf-8");
    let rounds = 3;
    for round in 0..rounds {
        let outputs = tokio::task::spawn_blocking({
            let url = url.clone();
            let file = file.to_string();
            move || together(2, &url, &["import", &file])
        })
        .await
        .expect("task");
        all_succeed(&outputs, &format!("{kind:?} import round {round}"));
    }
    let imported = costsplit::ingest::read_files(&[PathBuf::from(file)]).expect("reads");
    let one_copy: i128 = imported.facts.iter().map(|f| f.effective.0).sum();
    let (facts, billed, _, _) = march(&url).await;
    assert_eq!(
        (facts, billed),
        (imported.facts.len(), one_copy),
        "{kind:?}: two imports of one month at once leave one copy"
    );
    for round in 0..rounds {
        let outputs = tokio::task::spawn_blocking({
            let url = url.clone();
            move || together(2, &url, &["allocate", "--month", "2025-03"])
        })
        .await
        .expect("task");
        all_succeed(&outputs, &format!("{kind:?} allocate round {round}"));
    }
    let (_, billed, allocations, allocated) = march(&url).await;
    assert!(allocations > 0);
    assert_eq!(
        allocated, billed,
        "{kind:?}: two allocates of one month at once leave one copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_imports_and_allocates_leave_one_copy_on_both_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = GenSpec::standard(60_000, 7);
    spec.month = day("2025-03-01");
    let world = World::new(spec);
    let file = dir.path().join("march.csv");
    world.write_csv(&file).expect("generate");
    for kind in BOTH {
        overlapping_imports_and_allocates_leave_one_copy(kind, &file).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_commands_started_together_on_a_fresh_sqlite_store_all_migrate() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
        let outputs = tokio::task::spawn_blocking(move || together(4, &url, &["migrate"]))
            .await
            .expect("task");
        all_succeed(&outputs, "four migrations at once");
    }
}
