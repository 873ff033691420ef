//! PostgreSQL over TLS, for the store and the `postgres` usage source: the local server
//! (`ssl = on` with its own certificate) for `sslmode=require` through the binary, and a
//! throwaway server started here (initdb, pg_ctl, a free port) that takes only TLS
//! connections, with a CA and certificate this test makes with openssl, for `verify-ca`,
//! `verify-full` and a wrong CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use costsplit::store::Store;
use sqlx::Connection;

use crate::support::{costsplit, data, free_port, pg_admin_url, rules, Kind, TestStore};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Commands that must run as the `postgres` user when the tests run as root (initdb refuses
/// root).
fn as_postgres(program: &str) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

/// A CA and a server certificate for `localhost` signed by it (EC P-256).
fn make_certificates(dir: &Path, ca_name: &str) {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        &format!("/CN={ca_name}"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// A PostgreSQL server on a free port that accepts TLS connections only; stopped when dropped.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        make_certificates(root, "costsplit test CA");
        // The server reads its key and data as `postgres`.
        run(Command::new("chmod").args(["-R", "a+rwX"]).arg(root));
        let data_dir = root.join("data");
        run(as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data_dir)
            .stdout(std::process::Stdio::null()));
        std::fs::write(
            data_dir.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("hba");
        let key = data_dir.join("server.key");
        std::fs::copy(root.join("server.key"), &key).expect("copy key");
        std::fs::copy(root.join("server.crt"), data_dir.join("server.crt")).expect("copy cert");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            run(Command::new("chown").arg("postgres").arg(&key));
        }
        run(Command::new("chmod").arg("0600").arg(&key));
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=localhost -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off",
            root.display()
        );
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data_dir)
            .args(["-o", &options, "-l"])
            .arg(root.join("log"))
            .args(["-w", "start"])
            .stdout(std::process::Stdio::null()));
        TlsServer { dir, port }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// Whether the session named `app` of the server behind `admin` is encrypted.
async fn session_uses_tls(admin: &str, app: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(admin).await.expect("admin");
    let ssl: Option<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
         WHERE a.application_name = $1 LIMIT 1",
    )
    .bind(app)
    .fetch_optional(&mut conn)
    .await
    .expect("pg_stat_ssl");
    conn.close().await.ok();
    ssl.expect("the store's session is listed")
}

async fn connect_error(url: &str) -> String {
    match Store::connect(url).await {
        Ok(_) => panic!("{url} connected"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn the_store_connects_with_each_sslmode_and_refuses_a_wrong_ca_clearly() {
    let server = TlsServer::start();
    let ca = server.ca();
    let ca = ca.display();

    // The server takes TLS only: plaintext is refused with what to change.
    let err = connect_error(&server.url("127.0.0.1", "sslmode=disable")).await;
    assert!(err.contains("remove sslmode=disable"), "{err}");

    // prefer (the default) and require encrypt without checking the certificate.
    for (i, query) in [
        "application_name=tls-default",
        "sslmode=prefer&application_name=tls-prefer",
        "sslmode=require&application_name=tls-require",
    ]
    .iter()
    .enumerate()
    {
        let store = Store::connect(&server.url("127.0.0.1", query))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e:#}"));
        let app = ["tls-default", "tls-prefer", "tls-require"][i];
        assert!(
            session_uses_tls(&server.url("localhost", "sslmode=require"), app).await,
            "{query}"
        );
        store.close().await;
    }

    // verify-ca and verify-full check the chain; here both check the host name too (sqlx 0.8
    // with this rustls: see src/pgtls.rs), so verify-ca is as strict as verify-full.
    let store =
        Store::connect(&server.url("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}")))
            .await
            .expect("verify-ca with the right CA");
    store.close().await;
    let store = Store::connect(&server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&application_name=tls-full"),
    ))
    .await
    .expect("verify-full with the right CA and host name");
    assert!(session_uses_tls(&server.url("localhost", "sslmode=require"), "tls-full").await);
    store.close().await;

    // The certificate names localhost, not 127.0.0.1.
    for mode in ["verify-full", "verify-ca"] {
        let err =
            connect_error(&server.url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={ca}")))
                .await;
        assert!(
            err.contains("does not name the host connected to"),
            "{mode}: {err}"
        );
    }

    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().expect("tempdir");
    make_certificates(other.path(), "another CA");
    let wrong = other.path().join("ca.crt");
    for mode in ["verify-ca", "verify-full"] {
        let err = connect_error(&server.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={}", wrong.display()),
        ))
        .await;
        assert!(
            err.contains("not signed by a CA in sslrootcert"),
            "{mode}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }

    // A CA file that is not there, and a mode that does not exist.
    let err = connect_error(&server.url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/rds-ca.pem",
    ))
    .await;
    assert!(
        err.contains("sslrootcert /nonexistent/rds-ca.pem cannot be read"),
        "{err}"
    );
    let err = connect_error(&server.url("localhost", "sslmode=verify")).await;
    assert!(
        err.contains("use one of disable, allow, prefer, require, verify-ca, verify-full"),
        "{err}"
    );
}

#[tokio::test]
async fn the_postgres_usage_source_measures_over_verified_tls() {
    let server = TlsServer::start();
    let admin = server.url("localhost", "sslmode=require");
    crate::usage::fill_schemas(&admin, &[("orders", 3000), ("payments", 1000)]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let source = |dsn: &str| {
        let dsn_file = dir.path().join("dsn");
        std::fs::write(&dsn_file, dsn).expect("dsn file");
        rules(&[
            ("services.toml", crate::usage::SERVICES),
            (
                "usage.toml",
                &format!(
                    r#"
[[source]]
name = "aurora"
kind = "postgres"
dsn_file = "{}"
map = {{ "orders" = "orders-api", "payments" = "payments-api" }}
"#,
                    dsn_file.display()
                ),
            ),
        ])
    };
    let t = TestStore::new(Kind::Sqlite).await;
    let d = crate::support::day("2025-03-01");
    let good = source(&server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", server.ca().display()),
    ));
    let sync = |rules: costsplit::rules::Rules| {
        let store = t.store.clone();
        async move {
            costsplit::jobs::sync_usage(
                &store,
                &rules,
                None,
                d,
                None,
                costsplit::clock::Clock::System,
            )
            .await
            .expect("sync")
        }
    };
    let summary = sync(good).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    let samples = t
        .store
        .usage_samples(&["aurora".to_string()], d, d)
        .await
        .expect("samples");
    assert_eq!(samples.len(), 2, "{samples:?}");

    // A wrong CA fails the source with the reason, never a silent plaintext measurement.
    let other = tempfile::tempdir().expect("tempdir");
    make_certificates(other.path(), "another CA");
    let bad = source(&server.url(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            other.path().join("ca.crt").display()
        ),
    ));
    let summary = sync(bad).await;
    assert_eq!(summary.failed(), 1, "{:?}", summary.runs);
    let message = &summary.runs[0].message;
    assert!(
        message.contains("not signed by a CA in sslrootcert"),
        "{message}"
    );
}

#[test]
fn the_binary_imports_into_the_local_server_with_sslmode_require() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let t = runtime.block_on(TestStore::new(Kind::Postgres));
    let url = format!(
        "{}?sslmode=require&application_name=costsplit-tls-cli",
        t.store_url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = costsplit(dir.path()).store(&url).run(&[
        "import",
        &data("focus-1.0-sample.csv").display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The session was encrypted: the store, held open here, shows it in pg_stat_ssl.
    let store = runtime
        .block_on(Store::connect(&url))
        .expect("the store opens over TLS");
    assert!(runtime.block_on(session_uses_tls(&pg_admin_url(), "costsplit-tls-cli")));
    runtime.block_on(store.close());
}
