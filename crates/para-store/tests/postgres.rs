//! The store's behaviour on PostgreSQL, the backend of servers that run as several processes.
//!
//! Runs when `PARA_TEST_POSTGRES` holds the URL of a database whose user may create databases
//! (`scripts/postgres` starts one and prints it; `scripts/test` sets the variable). Each test
//! works in its own fresh database `t_<uuid>`, dropped afterwards, so tests run in parallel
//! without meeting. Without the variable every test passes after saying it was skipped, unless
//! `PARA_TEST_REQUIRE_POSTGRES=1` (CI), where a missing server is a failure.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use para_store::{
    Backend, CredentialConfiguration, CredentialStatus, OAuthState, SettingsKey, SettingsScope,
    Store, now_ms,
};
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};

/// The admin URL, or `None` (after saying so) when the tests are to be skipped.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var("PARA_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            assert!(
                std::env::var("PARA_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PARA_TEST_REQUIRE_POSTGRES=1 but PARA_TEST_POSTGRES is not set (start a server with scripts/postgres)"
            );
            // Past the test harness's capture (it takes only `eprintln!`), so a plain
            // `cargo test` shows it, once per run.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "para-store: PostgreSQL tests skipped (first: {test}): PARA_TEST_POSTGRES is not set; \
                     export PARA_TEST_POSTGRES=$(scripts/postgres) to run them"
                );
            });
            None
        }
    }
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Runs `body` with the URL of a fresh database, then drops the database (also when the body
/// panicked, whose panic is then passed on).
async fn with_fresh_db<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin) = admin_url(test) else { return };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PARA_TEST_POSTGRES ({admin}): {e}"));
    // The name is ours (t_ and hex digits); identifiers cannot be bound.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let outcome = tokio::spawn(body(with_database(&admin, &name))).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Applied migration versions, read directly (not through the store).
async fn migration_versions(url: &str) -> Vec<i64> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT version FROM para_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<i64, _>(0)).collect()
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:54329/para_test", "t_1"),
        "postgres://u@127.0.0.1:54329/t_1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgresql://h:5432", "x"), "postgresql://h:5432/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrates_a_fresh_database_once_and_reopens() {
    with_fresh_db("migrates_a_fresh_database_once_and_reopens", |url| async move {
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        let versions = migration_versions(&url).await;
        assert!(!versions.is_empty(), "migrations were recorded");
        store.touch_user("p", "u", Some(&json!({"plan": "pro"}))).await.unwrap();
        drop(store);

        let again = Store::open(&url).await.unwrap();
        assert_eq!(migration_versions(&url).await, versions, "nothing migrated twice");
        let user = again.user("p", "u").await.unwrap().expect("the data survived");
        assert_eq!(user.meta, json!({"plan": "pro"}));
    })
    .await;
}

/// Migrations 7 and 8 rebuild `user_settings` and `trigger_state` with a configuration column:
/// rows an older server stored are kept, as the integration-level ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_migrations_keep_stored_settings_and_poll_state_on_postgres() {
    with_fresh_db("the_configuration_migrations_keep_stored_rows_on_postgres", |url| async move {
        drop(Store::open_migrated_to(&url, 6).await.unwrap());
        assert_eq!(migration_versions(&url).await, [1, 2, 3, 4, 5, 6]);
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO user_settings (project_id, user_id, integration, workflow_id, enabled, settings, updated_at)
             VALUES ('p', 'alice', 'slack', 'wf1', 1, '{\"n\":2}', 5)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO trigger_state (project_id, workflow_id, user_id, next_poll_at, state, updated_at)
             VALUES ('p', 'wf', 'alice', 0, '{\"seen\":[\"1\"]}', 5)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let s = Store::open(&url).await.unwrap();
        let versions = migration_versions(&url).await;
        assert!(versions.starts_with(&[1, 2, 3, 4, 5, 6, 7, 8]), "{versions:?}");
        // Migration 8: the poll state is kept, as the integration-level one.
        let previous = s.claim_poll("p", "wf", "alice", SHARED, 60_000).await.unwrap();
        assert_eq!(previous, Some(Some(json!({"seen": ["1"]}))));
        let settings = s.settings("p", "alice").await.unwrap();
        assert_eq!(settings.len(), 1);
        let row = &settings[0];
        assert_eq!(
            (&row.configuration, row.workflow_id.as_str(), row.enabled, &row.values),
            (SHARED, "wf1", Some(true), &json!({"n": 2}))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_fresh_database_all_succeed() {
    with_fresh_db("concurrent_opens_of_a_fresh_database_all_succeed", |url| async move {
        // Servers starting at once: the advisory lock lets one migrate while the others wait.
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().expect("every concurrent open succeeds"));
        }
        let versions = migration_versions(&url).await;
        let mut unique = versions.clone();
        unique.dedup();
        assert_eq!(versions, unique, "each migration recorded once");
        for (i, store) in stores.iter().enumerate() {
            store.touch_user("p", &format!("u{i}"), None).await.unwrap();
        }
        assert_eq!(stores[0].users("p").await.unwrap().len(), stores.len());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_meta_is_replaced_only_when_given() {
    with_fresh_db("users_meta_is_replaced_only_when_given", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let before = now_ms();
        let u = s.touch_user("p", "alice", Some(&json!({"plan": "pro"}))).await.unwrap();
        assert_eq!(u.meta, json!({"plan": "pro"}));
        assert!(u.created_at >= before, "BIGINT times round-trip");
        let u = s.touch_user("p", "alice", None).await.unwrap();
        assert_eq!(u.meta, json!({"plan": "pro"}), "no meta keeps the stored one");
        let u = s.touch_user("p", "alice", Some(&json!({}))).await.unwrap();
        assert_eq!(u.meta, json!({}), "given meta replaces");
        s.touch_user("p", "bob", None).await.unwrap();
        s.touch_user("other", "carol", None).await.unwrap();
        let users = s.users("p").await.unwrap();
        assert_eq!(
            users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"],
            "oldest first, one project only"
        );
        assert!(s.user("other", "alice").await.unwrap().is_none());
    })
    .await;
}

/// The merge rule of docs/connect-sdk.md § 3 on PostgreSQL, where the user's row is locked
/// while a token's claims or a patch are merged: concurrent patches of different keys all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_claims_and_patches_merge_on_postgres() {
    with_fresh_db("token_claims_and_patches_merge_on_postgres", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let claims = json!({"plan": "pro", "team": "a"});
        s.touch_signed_user("p", "ann", Some(&claims)).await.unwrap();
        let patch = json!({"plan": "trial"});
        s.merge_user_meta("p", "ann", patch.as_object().unwrap(), 4096).await.unwrap().unwrap();
        let u = s.touch_signed_user("p", "ann", Some(&claims)).await.unwrap();
        assert_eq!(u.meta, json!({"plan": "trial", "team": "a"}), "patched value kept");
        let u = s.touch_signed_user("p", "ann", Some(&json!({"plan": "pro", "team": "b"}))).await;
        assert_eq!(u.unwrap().meta, json!({"plan": "trial", "team": "b"}), "changed claim wins");
        let patches = (0..8).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let patch = json!({ format!("k{i}"): i });
                s.merge_user_meta("p", "ann", patch.as_object().unwrap(), 4096)
                    .await
                    .unwrap()
                    .unwrap();
            })
        });
        for p in patches.collect::<Vec<_>>() {
            p.await.unwrap();
        }
        let meta = s.user("p", "ann").await.unwrap().unwrap().meta;
        for i in 0..8 {
            assert_eq!(meta[format!("k{i}")], json!(i), "{meta}");
        }
    })
    .await;
}

/// The integration-level settings.
const SHARED: &SettingsKey = &SettingsKey::Integration;

/// A made configuration's settings.
fn key(id: &str) -> SettingsKey {
    SettingsKey::Configuration(id.into())
}

fn scope<'a>(
    project: &'a str,
    user: &'a str,
    configuration: &'a SettingsKey,
    workflow: &'a str,
) -> SettingsScope<'a> {
    SettingsScope {
        project_id: project,
        user_id: user,
        integration: "slack",
        configuration,
        workflow_id: workflow,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_keep_their_own_settings_on_postgres() {
    with_fresh_db("configurations_keep_their_own_settings_on_postgres", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let c = s
            .insert_credential(&para_store::NewCredential::new(
                "p",
                "alice",
                "slack",
                CredentialStatus::Valid,
                "v1:a",
            ))
            .await
            .unwrap();
        let a = s.insert_configuration("p", "alice", &c.id, Some("team-a")).await.unwrap();
        assert!(s.insert_configuration("p", "alice", &c.id, Some("team-a")).await.is_err());
        let b = s.insert_configuration("p", "alice", &c.id, None).await.unwrap();
        s.put_settings(scope("p", "alice", SHARED, ""), None, Some(&json!({"n": 0})))
            .await
            .unwrap();
        s.put_settings(scope("p", "alice", &key(&a.id), ""), None, Some(&json!({"n": 1})))
            .await
            .unwrap();
        s.put_settings(scope("p", "alice", &key(&a.id), "wf1"), Some(true), None).await.unwrap();
        s.put_settings(scope("p", "alice", &key(&b.id), "wf1"), Some(false), None).await.unwrap();
        let settings = s.settings("p", "alice").await.unwrap();
        let keys: Vec<(Option<&str>, &str)> = settings
            .iter()
            .map(|x| (x.configuration.configuration_id(), x.workflow_id.as_str()))
            .collect();
        let (a_id, b_id) = (Some(a.id.as_str()), Some(b.id.as_str()));
        let mut expected = vec![(None, ""), (a_id, ""), (a_id, "wf1"), (b_id, "wf1")];
        expected.sort();
        assert_eq!(keys, expected);
        let meta = CredentialConfiguration { meta: json!({"k": true}), ..a.clone() };
        assert!(s.put_configuration_meta("p", "alice", &meta).await.unwrap());
        assert!(!s.put_configuration_meta("p", "bob", &meta).await.unwrap());
        let rows = s.configurations("p", "alice").await.unwrap();
        assert_eq!(rows.iter().find(|r| r.id == a.id).unwrap().meta, json!({"k": true}));
        assert_eq!(rows[0].external_id.as_deref(), Some("team-a"), "oldest first");
        assert!(!s.delete_configuration("p", "bob", &b.id).await.unwrap());
        assert!(s.delete_configuration("p", "alice", &b.id).await.unwrap());
        assert_eq!(s.settings("p", "alice").await.unwrap().len(), 3);
        assert!(s.delete_credential("p", "alice", &c.id).await.unwrap());
        assert!(s.configurations("p", "alice").await.unwrap().is_empty());
        let left = s.settings("p", "alice").await.unwrap();
        assert_eq!(left.len(), 1, "only the integration-level settings stay: {left:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_settings_belong_to_one_user_and_project() {
    with_fresh_db("credentials_and_settings_belong_to_one_user_and_project", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let expires = now_ms() + 3_600_000;
        let c = s
            .insert_credential(&para_store::NewCredential {
                provider_id: Some("U1"),
                provider_data: json!({"team": "T1"}),
                expires_at: Some(expires),
                ..para_store::NewCredential::new(
                    "p",
                    "alice",
                    "slack",
                    CredentialStatus::Valid,
                    "v1:sealed",
                )
            })
            .await
            .unwrap();
        assert_eq!(c.expires_at, Some(expires));
        assert_eq!((c.status_reason.as_deref(), c.provider_id.as_deref()), (None, Some("U1")));
        assert_eq!(c.provider_data, json!({"team": "T1"}));
        // Same integration, another user and another project: separate rows.
        let bobs = s
            .insert_credential(&para_store::NewCredential::new(
                "p",
                "bob",
                "slack",
                CredentialStatus::Pending,
                "v1:b",
            ))
            .await
            .unwrap();
        assert_eq!(bobs.expires_at, None, "NULL BIGINT round-trips");
        s.insert_credential(&para_store::NewCredential::new(
            "q",
            "alice",
            "slack",
            CredentialStatus::Valid,
            "v1:q",
        ))
        .await
        .unwrap();

        assert_eq!(s.credentials("p", "alice", None).await.unwrap(), vec![c.clone()]);
        assert_eq!(s.credentials("p", "alice", Some("slack")).await.unwrap().len(), 1);
        assert!(s.credentials("p", "alice", Some("jira")).await.unwrap().is_empty());
        // Bob cannot see, change or delete Alice's credential, even knowing its id.
        assert!(s.credential("p", "bob", &c.id).await.unwrap().is_none());
        assert!(
            s.update_credential("p", "bob", &c.id, CredentialStatus::Invalid, None, "x", None)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.set_provider_data("p", "bob", &c.id, &json!({"x": 1})).await.unwrap().is_none());
        assert!(!s.delete_credential("p", "bob", &c.id).await.unwrap());
        assert!(s.credential("q", "alice", &c.id).await.unwrap().is_none());
        assert_eq!(s.credential("p", "alice", &c.id).await.unwrap().unwrap().secret, "v1:sealed");

        let returned = s
            .update_credential(
                "p",
                "alice",
                &c.id,
                CredentialStatus::Invalid,
                Some("401 from test"),
                "v1:new",
                None,
            )
            .await
            .unwrap();
        let updated = s.credential("p", "alice", &c.id).await.unwrap().unwrap();
        assert_eq!(returned.as_ref(), Some(&updated), "the update returns what it stored");
        assert_eq!(
            (updated.status, updated.status_reason.as_deref(), updated.secret.as_str()),
            (CredentialStatus::Invalid, Some("401 from test"), "v1:new")
        );
        assert_eq!(updated.expires_at, None);
        let set = s.set_provider_data("p", "alice", &c.id, &json!({"site": "eng"})).await.unwrap();
        let shown = s.credential("p", "alice", &c.id).await.unwrap().unwrap();
        assert_eq!(set.as_ref(), Some(&shown));
        assert_eq!(
            (shown.provider_data, shown.secret.as_str()),
            (json!({"site": "eng"}), "v1:new")
        );

        s.put_settings(scope("p", "alice", SHARED, ""), None, Some(&json!({"channel": "C1"})))
            .await
            .unwrap();
        s.put_settings(scope("p", "alice", SHARED, "wf1"), Some(true), None).await.unwrap();
        s.put_settings(scope("p", "alice", SHARED, "wf1"), None, Some(&json!({"n": 2})))
            .await
            .unwrap();
        s.put_settings(scope("p", "alice", SHARED, "wf2"), Some(false), None).await.unwrap();
        s.put_settings(scope("p", "bob", SHARED, "wf1"), Some(false), None).await.unwrap();
        s.put_settings(scope("q", "alice", SHARED, "wf1"), Some(false), None).await.unwrap();
        let settings = s.settings("p", "alice").await.unwrap();
        assert_eq!(settings.len(), 3);
        assert_eq!((settings[0].enabled, &settings[0].values), (None, &json!({"channel": "C1"})));
        assert_eq!(settings[1].enabled, Some(true), "the toggle survives a values update");
        assert_eq!(settings[1].values, json!({"n": 2}));
        assert_eq!(settings[2].enabled, Some(false));
        s.put_settings(scope("p", "alice", SHARED, "wf1"), Some(false), None).await.unwrap();
        assert_eq!(s.settings("p", "alice").await.unwrap()[1].values, json!({"n": 2}));
        assert_eq!(s.settings("p", "bob").await.unwrap().len(), 1);

        // One account of several: the other account and the settings stay; nobody else (nor
        // another integration) can remove it; the last account takes the settings with it.
        let second = s
            .insert_credential(&para_store::NewCredential::new(
                "p",
                "alice",
                "slack",
                CredentialStatus::Valid,
                "v1:2",
            ))
            .await
            .unwrap();
        assert_eq!(s.uninstall_credential("p", "bob", "slack", &second.id).await.unwrap(), None);
        assert_eq!(s.uninstall_credential("p", "alice", "jira", &second.id).await.unwrap(), None);
        assert_eq!(
            s.uninstall_credential("p", "alice", "slack", &second.id).await.unwrap(),
            Some(1)
        );
        assert_eq!(s.settings("p", "alice").await.unwrap().len(), 3);
        assert_eq!(s.credentials("p", "alice", Some("slack")).await.unwrap().len(), 1);

        assert_eq!(s.uninstall("p", "alice", "slack").await.unwrap(), 1);
        assert!(s.settings("p", "alice").await.unwrap().is_empty());
        assert!(s.credentials("p", "alice", None).await.unwrap().is_empty());
        // Bob's and the other project's rows are untouched.
        assert_eq!(s.credentials("p", "bob", None).await.unwrap(), vec![bobs]);
        assert_eq!(s.settings("p", "bob").await.unwrap().len(), 1);
        assert_eq!(s.credentials("q", "alice", None).await.unwrap().len(), 1);
        assert_eq!(s.settings("q", "alice").await.unwrap().len(), 1);
    })
    .await;
}

fn oauth_state(name: &str, expires_at: i64) -> OAuthState {
    OAuthState {
        state: name.into(),
        project_id: "p".into(),
        user_id: "alice".into(),
        integration: "slack".into(),
        sealed: "v1:x".into(),
        expires_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_states_are_single_use_and_expire() {
    with_fresh_db("oauth_states_are_single_use_and_expire", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let fresh = oauth_state("fresh", now_ms() + 60_000);
        s.put_oauth_state(&fresh).await.unwrap();
        s.put_oauth_state(&oauth_state("stale", now_ms() - 1)).await.unwrap();
        assert!(s.put_oauth_state(&fresh).await.is_err(), "a state is unique");
        assert_eq!(s.take_oauth_state("fresh").await.unwrap(), Some(fresh));
        assert!(s.take_oauth_state("fresh").await.unwrap().is_none(), "replay refused");
        assert!(s.take_oauth_state("stale").await.unwrap().is_none(), "expired refused");
        assert!(s.take_oauth_state("never").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_state_is_taken_once_under_concurrency() {
    with_fresh_db("an_oauth_state_is_taken_once_under_concurrency", |url| async move {
        // Two stores: two server processes sharing the database, each with its own pool.
        let stores = Arc::new([Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap()]);
        for round in 0..5 {
            let name = format!("race-{round}");
            stores[0].put_oauth_state(&oauth_state(&name, now_ms() + 60_000)).await.unwrap();
            let barrier = Arc::new(tokio::sync::Barrier::new(10));
            let takers: Vec<_> = (0..10)
                .map(|i| {
                    let (stores, barrier, name) = (stores.clone(), barrier.clone(), name.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        stores[i % 2].take_oauth_state(&name).await.unwrap()
                    })
                })
                .collect();
            let mut won = 0;
            for taker in takers {
                if let Some(state) = taker.await.unwrap() {
                    assert_eq!(state.state, name);
                    won += 1;
                }
            }
            assert_eq!(won, 1, "round {round}: exactly one callback gets the state");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_of_one_row_do_not_fail() {
    with_fresh_db("concurrent_upserts_of_one_row_do_not_fail", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.touch_user("p", "alice", Some(&json!({"n": i}))).await.unwrap();
                    s.put_settings(scope("p", "alice", SHARED, "wf1"), Some(i % 2 == 0), None)
                        .await
                        .unwrap();
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(s.users("p").await.unwrap().len(), 1);
        assert_eq!(s.settings("p", "alice").await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_lease_across_processes() {
    with_fresh_db("one_refresh_lease_across_processes", |url| async move {
        // Two stores: two server processes racing to refresh one expired credential.
        let stores = Arc::new([Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap()]);
        let c = stores[0]
            .insert_credential(&para_store::NewCredential::new(
                "p",
                "alice",
                "slack",
                CredentialStatus::Valid,
                "v1:s",
            ))
            .await
            .unwrap();
        let race = |until: i64| {
            let barrier = Arc::new(tokio::sync::Barrier::new(10));
            let racers: Vec<_> = (0..10)
                .map(|i| {
                    let (stores, barrier, id) = (stores.clone(), barrier.clone(), c.id.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        stores[i % 2].try_lease_refresh(&id, until).await.unwrap()
                    })
                })
                .collect::<Vec<_>>();
            async move {
                let mut won = 0;
                for racer in racers {
                    won += usize::from(racer.await.unwrap());
                }
                won
            }
        };
        assert_eq!(race(now_ms() + 60_000).await, 1, "exactly one process refreshes");
        assert_eq!(race(now_ms() + 60_000).await, 0, "a held lease is not taken again");
        stores[1].release_refresh(&c.id).await.unwrap();
        assert_eq!(race(now_ms() + 60_000).await, 1, "a released lease is free again");
        // A lease whose holder died runs out and is taken over.
        stores[0].release_refresh(&c.id).await.unwrap();
        assert!(stores[0].try_lease_refresh(&c.id, now_ms() - 1).await.unwrap());
        assert!(stores[1].try_lease_refresh(&c.id, now_ms() + 60_000).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_sessions_and_nonces_round_trip() {
    with_fresh_db("oauth_sessions_and_nonces_round_trip", |url| async move {
        let s = Store::open(&url).await.unwrap();
        s.start_oauth_session("p", "alice", "sess").await.unwrap();
        s.start_oauth_session("p", "alice", "sess").await.unwrap();
        let pending = s.oauth_session("p", "alice", "sess").await.unwrap().unwrap();
        assert_eq!((pending.credential_id, pending.error), (None, None), "NULL TEXT round-trips");
        assert!(s.oauth_session("p", "bob", "sess").await.unwrap().is_none(), "per user");
        s.finish_oauth_session("p", "alice", "sess", Some("cred-1"), None).await.unwrap();
        let done = s.oauth_session("p", "alice", "sess").await.unwrap().unwrap();
        assert_eq!(done.credential_id.as_deref(), Some("cred-1"));
        s.delete_oauth_session("p", "alice", "sess").await.unwrap();
        assert!(s.oauth_session("p", "alice", "sess").await.unwrap().is_none());

        s.put_oauth_nonce("n1", "p", "alice", now_ms() + 60_000).await.unwrap();
        s.put_oauth_nonce("old", "p", "alice", now_ms() - 1).await.unwrap();
        assert_eq!(s.oauth_nonce("n1").await.unwrap(), Some(("p".into(), "alice".into())));
        assert!(s.oauth_nonce("old").await.unwrap().is_none(), "expired");
        assert!(s.oauth_nonce("never").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_two_stores_claim_every_run_exactly_once() {
    use para_store::runs::{Lease, NewRun, RunState, StepRecord, Write};
    with_fresh_db("workers_on_two_stores_claim_every_run_exactly_once", |url| async move {
        let stores = Arc::new([Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap()]);
        let mut runs = Vec::new();
        for i in 0..200 {
            let run = NewRun {
                id: format!("run-{i}"),
                project_id: "p".into(),
                user_id: format!("u{}", i % 5),
                integration: "slack".into(),
                workflow_id: "wf".into(),
                trigger_kind: "event".into(),
                trigger_input: json!({ "i": i }),
                build_hash: "h".into(),
                credential_id: None,
                configuration_id: None,
            };
            let create = Write::Create { run, lease: None, steps: vec![] };
            assert_eq!(stores[i % 2].apply(&[create]).await.unwrap(), [true]);
            runs.push(format!("run-{i}"));
        }
        // Four workers, two per "process", claiming in small batches until nothing is due.
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let stores = stores.clone();
                tokio::spawn(async move {
                    let name = format!("w{w}");
                    let mut mine = Vec::new();
                    loop {
                        let claimed =
                            stores[w % 2].claim_runs("p", &name, 7, 60_000).await.unwrap();
                        if claimed.is_empty() {
                            break;
                        }
                        let writes: Vec<Write> = claimed
                            .iter()
                            .map(|r| Write::Progress {
                                run_id: r.id.clone(),
                                lease: Lease { owner: name.clone(), until: 0 },
                                steps: vec![StepRecord {
                                    key: "only".into(),
                                    step_id: "s".into(),
                                    seq: 1,
                                    status: para_store::StepStatus::Done,
                                    attempts: 1,
                                    input: None,
                                    output: Some(r.trigger_input.clone()),
                                    error: None,
                                    not_before: None,
                                    started_at: 0,
                                    finished_at: Some(0),
                                }],
                                state: RunState::Succeeded,
                                response: None,
                            })
                            .collect();
                        let recorded = stores[w % 2].apply(&writes).await.unwrap();
                        assert!(
                            recorded.iter().all(|r| *r),
                            "a worker lost a lease it had just taken"
                        );
                        mine.extend(claimed.into_iter().map(|r| r.id));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!((total, all.len()), (200, 200), "every run once, none twice");
        for run in &runs {
            let stored = stores[0].run("p", run).await.unwrap().unwrap();
            assert_eq!((stored.status, stored.claims), (para_store::RunStatus::Succeeded, 1));
            assert_eq!(stores[1].run_steps(run).await.unwrap().len(), 1);
        }
        assert!(stores[1].claim_cron_tick("p", "wf", 60_000, "a").await.unwrap());
        assert!(!stores[0].claim_cron_tick("p", "wf", 60_000, "b").await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_history_is_filtered_paged_and_per_project() {
    use para_store::history::{Cursor, RunFilter};
    use para_store::runs::{NewRun, Write};
    with_fresh_db("run_history_is_filtered_paged_and_per_project", |url| async move {
        let s = Store::open(&url).await.unwrap();
        let create = |project: &str, id: String, user: &str, workflow: &str| Write::Create {
            run: NewRun {
                id,
                project_id: project.into(),
                user_id: user.into(),
                integration: "slack".into(),
                workflow_id: workflow.into(),
                trigger_kind: "event".into(),
                trigger_input: json!({}),
                build_hash: "h".into(),
                credential_id: None,
                configuration_id: None,
            },
            lease: None,
            steps: vec![],
        };
        // Two batches, each created in one transaction (one created_at): ties broken by id.
        for batch in 0..2 {
            let writes: Vec<Write> = (0..5)
                .map(|i| {
                    let user = if i % 2 == 0 { "ann" } else { "bob" };
                    create("p", format!("b{batch}-r{i}"), user, if i < 3 { "wf-a" } else { "wf-b" })
                })
                .chain([create("q", format!("q{batch}"), "ann", "wf-a")])
                .collect();
            s.apply(&writes).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let all = RunFilter::default();
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = s.list_runs("p", &all, 4, after.as_ref()).await.unwrap();
            seen.extend(page.runs.iter().map(|l| l.run.id.clone()));
            match page.next {
                Some(next) => after = Cursor::parse(&next.encode()),
                None => break,
            }
        }
        let expected: Vec<String> =
            (0..2).rev().flat_map(|b| (0..5).rev().map(move |i| format!("b{b}-r{i}"))).collect();
        assert_eq!(seen, expected, "newest first, every run once");
        assert_eq!(s.count_runs("p", &all).await.unwrap(), 10);

        let ann_b = RunFilter {
            user_id: Some("ann".into()),
            workflow_id: Some("wf-b".into()),
            ..Default::default()
        };
        let page = s.list_runs("p", &ann_b, 100, None).await.unwrap();
        let ids: Vec<&str> = page.runs.iter().map(|l| l.run.id.as_str()).collect();
        assert_eq!(ids, ["b1-r4", "b0-r4"]);
        assert_eq!(s.count_runs("p", &ann_b).await.unwrap(), 2);
        let queued =
            RunFilter { status: Some(para_store::RunStatus::Queued), ..Default::default() };
        assert_eq!(s.count_runs("p", &queued).await.unwrap(), 10);
        let first = page.runs[1].run.created_at;
        let window = RunFilter { created_after: Some(first + 1), ..Default::default() };
        assert_eq!(s.count_runs("p", &window).await.unwrap(), 5, "the second batch only");
        let other = s.list_runs("q", &all, 100, None).await.unwrap();
        let ids: Vec<&str> = other.runs.iter().map(|l| l.run.id.as_str()).collect();
        assert_eq!(ids, ["q1", "q0"]);
        assert_eq!(other.runs[0].steps, 0);
    })
    .await;
}

/// Writes every credential, run and step status through the store's API and reads each back,
/// then stores texts no status names (as a newer para might) and expects a clear error. Run on
/// PostgreSQL and, for comparison, on SQLite: the texts are the same on both.
async fn statuses_round_trip(url: &str) {
    use para_store::runs::{Lease, NewRun, RunState, StepRecord, Write};
    use para_store::{NewCredential, RunStatus, StepStatus, StoreError};
    let s = Store::open(url).await.unwrap();

    for &status in CredentialStatus::ALL {
        let c = s
            .insert_credential(&NewCredential::new("p", "ann", "slack", status, "v1:s"))
            .await
            .unwrap();
        assert_eq!(c.status, status);
        assert_eq!(s.credential("p", "ann", &c.id).await.unwrap().unwrap().status, status);
        for &next in CredentialStatus::ALL {
            let updated = s.update_credential("p", "ann", &c.id, next, None, "v1:s", None).await;
            assert_eq!(updated.unwrap().map(|c| c.status), Some(next));
            assert_eq!(s.credential("p", "ann", &c.id).await.unwrap().unwrap().status, next);
        }
    }
    // Only valid credentials make a user connected (a bound status, not a literal).
    let listed = s.credentials("p", "ann", None).await.unwrap();
    assert!(listed.iter().all(|c| c.status == CredentialStatus::Pending), "{listed:?}");
    assert!(s.connected_users("p", "slack").await.unwrap().is_empty());
    s.update_credential("p", "ann", &listed[0].id, CredentialStatus::Valid, None, "v1:s", None)
        .await
        .unwrap();
    assert_eq!(s.connected_users("p", "slack").await.unwrap(), ["ann"]);

    let step = |key: &str, status: StepStatus| StepRecord {
        key: key.into(),
        step_id: key.into(),
        seq: 1,
        status,
        attempts: 1,
        input: None,
        output: None,
        error: None,
        not_before: None,
        started_at: 0,
        finished_at: None,
    };
    let new_run = |id: &str| NewRun {
        id: id.into(),
        project_id: "p".into(),
        user_id: "ann".into(),
        integration: "slack".into(),
        workflow_id: "wf".into(),
        trigger_kind: "event".into(),
        trigger_input: json!({}),
        build_hash: "h".into(),
        credential_id: None,
        configuration_id: None,
    };
    let steps: Vec<StepRecord> =
        StepStatus::ALL.iter().map(|&status| step(status.as_str(), status)).collect();
    let created = [
        Write::Create { run: new_run("queued"), lease: None, steps: steps.clone() },
        Write::Create {
            run: new_run("leased"),
            lease: Some(Lease { owner: "w".into(), until: now_ms() + 60_000 }),
            steps: vec![],
        },
    ];
    assert_eq!(s.apply(&created).await.unwrap(), [true, true]);
    let read: Vec<(String, StepStatus)> =
        s.run_steps("queued").await.unwrap().into_iter().map(|e| (e.key, e.status)).collect();
    let written: Vec<(String, StepStatus)> =
        steps.iter().map(|e| (e.key.clone(), e.status)).collect();
    assert_eq!(read, written);
    let status_of = |id: &'static str| {
        let s = s.clone();
        async move { s.run("p", id).await.unwrap().unwrap().status }
    };
    assert_eq!(status_of("queued").await, RunStatus::Queued);
    assert_eq!(status_of("leased").await, RunStatus::Running);
    let write = |id: &str, state| Write::Progress {
        run_id: id.into(),
        lease: Lease { owner: "w".into(), until: now_ms() + 60_000 },
        steps: vec![],
        state,
        response: None,
    };
    assert_eq!(s.apply(&[write("leased", RunState::Running)]).await.unwrap(), [true]);
    assert_eq!(status_of("leased").await, RunStatus::Running);
    // Waiting gives the lease back; due at once, a claim takes it (and the queued run) again.
    assert_eq!(s.apply(&[write("leased", RunState::Waiting(now_ms() - 1))]).await.unwrap(), [true]);
    assert_eq!(status_of("leased").await, RunStatus::Waiting);
    let claimed = s.claim_runs("p", "w", 10, 60_000).await.unwrap();
    assert!(claimed.iter().all(|r| r.status == RunStatus::Running), "{claimed:?}");
    assert_eq!(claimed.len(), 2);
    let end =
        [write("leased", RunState::Failed("no".into())), write("queued", RunState::Succeeded)];
    assert_eq!(s.apply(&end).await.unwrap(), [true, true]);
    assert_eq!(status_of("leased").await, RunStatus::Failed);
    assert_eq!(status_of("queued").await, RunStatus::Succeeded);
    for &status in RunStatus::ALL {
        let filter = para_store::history::RunFilter { status: Some(status), ..Default::default() };
        let expected = match status {
            RunStatus::Succeeded | RunStatus::Failed => 1,
            _ => 0,
        };
        assert_eq!(s.count_runs("p", &filter).await.unwrap(), expected, "{status}");
    }

    // Texts no status names, written by hand: each read says which text of what.
    let mut raw = sqlx::AnyConnection::connect(url).await.unwrap();
    for sql in [
        "UPDATE credentials SET status = 'REVOKED'",
        "UPDATE runs SET status = 'PAUSED' WHERE id = 'queued'",
        "UPDATE run_steps SET status = 'SKIPPED' WHERE step_key = 'DONE'",
    ] {
        sqlx::query(sql).execute(&mut raw).await.unwrap();
    }
    raw.close().await.unwrap();
    let unknown = |e: StoreError| match e {
        StoreError::Status(unknown) => (unknown.kind, unknown.value),
        other => panic!("expected an unknown status, got {other:?}"),
    };
    let e = s.credentials("p", "ann", None).await.unwrap_err();
    assert!(e.to_string().contains("`REVOKED` is not a credential status"), "{e}");
    assert_eq!(unknown(e), ("credential status", "REVOKED".into()));
    let e = s.run("p", "queued").await.unwrap_err();
    assert_eq!(unknown(e), ("run status", "PAUSED".into()));
    let e = s.list_runs("p", &Default::default(), 10, None).await.unwrap_err();
    assert_eq!(unknown(e), ("run status", "PAUSED".into()));
    let e = s.run_steps("queued").await.unwrap_err();
    assert_eq!(unknown(e), ("step status", "SKIPPED".into()));
    assert_eq!(status_of("leased").await, RunStatus::Failed, "other rows still read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_round_trip_and_unknown_ones_are_errors_on_postgres() {
    with_fresh_db(
        "statuses_round_trip_and_unknown_ones_are_errors_on_postgres",
        |url| async move {
            statuses_round_trip(&url).await;
        },
    )
    .await;
}

#[tokio::test]
async fn statuses_round_trip_and_unknown_ones_are_errors_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    statuses_round_trip(&format!("sqlite://{}", dir.path().join("para.db").display())).await;
}

/// Webhook events: a redelivery records nothing; a claim leases an event to one dispatcher;
/// routing it commits with its runs under the lease, and a dispatcher that lost the lease writes
/// nothing at all (no run, no mark).
async fn webhook_events_are_recorded_once_and_routed_once(url: &str) {
    use para_store::runs::{NewRun, Write};
    use para_store::webhooks::NewWebhookEvent;
    let a = para_store::Store::open(url).await.unwrap();
    let b = para_store::Store::open(url).await.unwrap();
    let event = |key: &str| NewWebhookEvent {
        project_id: "p".into(),
        integration: "github".into(),
        hook: "h1".into(),
        dedupe_key: key.into(),
        event_type: "push".into(),
        account: None,
        body: serde_json::json!({"n": key}),
        headers: serde_json::json!({}),
    };
    assert_eq!(
        a.insert_webhook_events(&[event("id:1"), event("id:2")]).await.unwrap(),
        [true, true]
    );
    assert_eq!(b.insert_webhook_events(&[event("id:1")]).await.unwrap(), [false], "a redelivery");
    let mut other = event("id:1");
    other.hook = "h2".into();
    assert_eq!(a.insert_webhook_events(&[other]).await.unwrap(), [true], "another URL's event");

    let claimed = a.claim_webhook_events("p", "A", 10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(b.claim_webhook_events("p", "B", 10, 60_000).await.unwrap().is_empty(), "leased");
    assert!(a.claim_webhook_events("q", "A", 10, 60_000).await.unwrap().is_empty(), "per project");

    let run = |id: &str| Write::Create {
        run: NewRun {
            id: id.into(),
            project_id: "p".into(),
            user_id: "u".into(),
            integration: "github".into(),
            workflow_id: "w".into(),
            trigger_kind: "webhook".into(),
            trigger_input: serde_json::json!({}),
            build_hash: "b".into(),
            credential_id: None,
            configuration_id: None,
        },
        lease: None,
        steps: Vec::new(),
    };
    let routed = |event: &str, owner: &str| Write::EventRouted {
        event_id: event.into(),
        owner: owner.into(),
        runs: 1,
        note: None,
    };
    // B does not hold the lease: neither its run nor its mark is written.
    let lost = b.apply(&[routed(&claimed[0].id, "B"), run("r-b")]).await.unwrap();
    assert_eq!(lost, [false, false]);
    assert!(a.run("p", "r-b").await.unwrap().is_none());
    let won = a.apply(&[routed(&claimed[0].id, "A"), run("r-a")]).await.unwrap();
    assert_eq!(won, [true, true]);
    assert!(a.run("p", "r-a").await.unwrap().is_some());
    // Routed once: a second routing of the same event writes nothing.
    assert_eq!(a.apply(&[routed(&claimed[0].id, "A"), run("r-a2")]).await.unwrap(), [false, false]);
    let listed = a.webhook_events("p", 10).await.unwrap();
    let first = listed.iter().find(|e| e.id == claimed[0].id).unwrap();
    assert_eq!((first.status.as_str(), first.runs), ("routed", 1));
    assert_eq!(listed.iter().filter(|e| e.status == "pending").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_are_recorded_once_and_routed_once_on_postgres() {
    with_fresh_db(
        "webhook_events_are_recorded_once_and_routed_once_on_postgres",
        |url| async move {
            webhook_events_are_recorded_once_and_routed_once(&url).await;
        },
    )
    .await;
}

#[tokio::test]
async fn webhook_events_are_recorded_once_and_routed_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("para.db").display());
    webhook_events_are_recorded_once_and_routed_once(&url).await;
}

#[tokio::test]
async fn old_routed_webhook_events_are_forgotten_and_pending_ones_kept() {
    use para_store::runs::Write;
    use para_store::webhooks::NewWebhookEvent;
    let dir = tempfile::tempdir().unwrap();
    let s = para_store::Store::open(&format!("sqlite://{}", dir.path().join("p.db").display()))
        .await
        .unwrap();
    let event = |key: &str| NewWebhookEvent {
        project_id: "p".into(),
        integration: "slack".into(),
        hook: String::new(),
        dedupe_key: key.into(),
        event_type: "message".into(),
        account: Some("T1".into()),
        body: serde_json::json!({}),
        headers: serde_json::json!({}),
    };
    s.insert_webhook_events(&[event("id:a"), event("id:b")]).await.unwrap();
    let claimed = s.claim_webhook_events("p", "me", 1, 60_000).await.unwrap();
    let routed = Write::EventRouted {
        event_id: claimed[0].id.clone(),
        owner: "me".into(),
        runs: 0,
        note: None,
    };
    s.apply(&[routed]).await.unwrap();
    let later = para_store::now_ms() + 1_000;
    assert_eq!(s.prune_webhook_events("q", later).await.unwrap(), 0, "another project's");
    assert_eq!(s.prune_webhook_events("p", later).await.unwrap(), 1);
    let left = s.webhook_events("p", 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status, "pending");
    // Forgotten, its key may be recorded again.
    assert_eq!(s.insert_webhook_events(&[event(&claimed[0].dedupe_key)]).await.unwrap(), [true]);
}

/// Triggers API subscriptions and their outbox: a subscription is its user's only; a delivery
/// is recorded once per source; one sender holds a claimed delivery; an attempt's outcome is
/// recorded only under the lease; the last failure marks the subscription ERRORED (its other
/// deliveries wait), and an update makes it ACTIVE again.
async fn trigger_subscriptions_deliver_once_and_error_after_the_last_attempt(url: &str) {
    use para_store::runs::Write;
    use para_store::trigger_subscriptions::{
        DeliveryOutcome, NewDelivery, SubscriptionStatus, TriggerSubscription,
    };
    let a = para_store::Store::open(url).await.unwrap();
    let b = para_store::Store::open(url).await.unwrap();
    let now = now_ms();
    let sub = TriggerSubscription {
        id: "s1".into(),
        project_id: "p".into(),
        user_id: "ann".into(),
        integration: "slack".into(),
        trigger_type: "SLACK_TRIGGER_CHANNEL_CREATED".into(),
        parameters: json!({}),
        credential_id: "c1".into(),
        webhook_override: Some(json!({"url": "http://x", "headers": {}, "metadata": {"k": 1}})),
        status: SubscriptionStatus::Active,
        failures: 0,
        error: None,
        last_event_at: None,
        created_at: now,
        updated_at: now,
    };
    a.insert_trigger_subscription(&sub).await.unwrap();
    assert_eq!(a.trigger_subscription("p", "ann", "s1").await.unwrap().as_ref(), Some(&sub));
    assert!(a.trigger_subscription("p", "bob", "s1").await.unwrap().is_none(), "bob's view");
    assert!(!a.delete_trigger_subscription("p", "bob", "s1").await.unwrap());
    assert!(
        a.update_trigger_subscription("p", "bob", "s1", &json!({}), None).await.unwrap().is_none()
    );
    assert_eq!(a.trigger_subscriptions("p", "ann", Some("slack")).await.unwrap().len(), 1);
    assert!(a.trigger_subscriptions("p", "ann", Some("github")).await.unwrap().is_empty());
    assert_eq!(a.active_trigger_subscriptions("p", "slack").await.unwrap().len(), 1);

    let delivery = |id: &str, source: &str| {
        Write::Delivery(NewDelivery {
            id: id.into(),
            project_id: "p".into(),
            subscription_id: "s1".into(),
            source: source.into(),
            body: format!("{{\"eventId\":\"{id}\"}}"),
        })
    };
    assert_eq!(
        a.apply(&[delivery("d1", "webhook:e1"), delivery("d2", "webhook:e2")]).await.unwrap(),
        [true, true]
    );
    assert_eq!(b.apply(&[delivery("d3", "webhook:e1")]).await.unwrap(), [false], "same source");
    let stored = a.trigger_subscription("p", "ann", "s1").await.unwrap().unwrap();
    assert!(stored.last_event_at.is_some());

    let claimed = a.claim_trigger_deliveries("p", "A", 10, 60_000).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1", "d2"]);
    assert_eq!(claimed[0].body, "{\"eventId\":\"d1\"}");
    assert!(b.claim_trigger_deliveries("p", "B", 10, 60_000).await.unwrap().is_empty(), "leased");

    // Only the holder records an outcome.
    let retry = DeliveryOutcome::Retry { at: 0, status: Some(500), error: "HTTP 500".into() };
    assert!(!b.finish_trigger_delivery("B", "d1", &retry).await.unwrap());
    assert!(a.finish_trigger_delivery("A", "d1", &retry).await.unwrap());
    let delivered = DeliveryOutcome::Delivered { status: 204 };
    assert!(a.finish_trigger_delivery("A", "d2", &delivered).await.unwrap());
    assert!(!a.finish_trigger_delivery("A", "d2", &delivered).await.unwrap(), "once");
    // The retry is due at once (at 0): B may take it now.
    let again = b.claim_trigger_deliveries("p", "B", 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].attempts, again[0].last_status),
        ("d1", 1, Some(500))
    );
    let failed = DeliveryOutcome::Failed { status: None, error: "timed out".into() };
    assert!(b.finish_trigger_delivery("B", "d1", &failed).await.unwrap());
    let errored = a.trigger_subscription("p", "ann", "s1").await.unwrap().unwrap();
    assert_eq!(errored.status, SubscriptionStatus::Errored);
    assert_eq!(errored.error.as_deref(), Some("timed out"));
    // In a row: d2's success between d1's two failures reset the count.
    assert_eq!(errored.failures, 1);
    let all = a.trigger_deliveries("p", "s1", 10).await.unwrap();
    let states: Vec<(&str, &str, i64)> =
        all.iter().map(|d| (d.id.as_str(), d.status.as_str(), d.attempts)).collect();
    assert_eq!(states, [("d1", "failed", 2), ("d2", "delivered", 1)]);

    // While ERRORED, new deliveries wait; an update makes it ACTIVE and they are sent.
    assert_eq!(a.apply(&[delivery("d4", "webhook:e4")]).await.unwrap(), [true]);
    assert!(a.claim_trigger_deliveries("p", "A", 10, 60_000).await.unwrap().is_empty());
    assert!(a.active_trigger_subscriptions("p", "slack").await.unwrap().is_empty());
    let updated = a
        .update_trigger_subscription("p", "ann", "s1", &json!({"channel": "C1"}), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.status, updated.failures, updated.error),
        (SubscriptionStatus::Active, 0, None)
    );
    assert_eq!((updated.parameters, updated.webhook_override), (json!({"channel": "C1"}), None));
    assert!(a.next_trigger_delivery_at("p").await.unwrap().is_some());
    assert_eq!(a.claim_trigger_deliveries("p", "A", 10, 60_000).await.unwrap().len(), 1);

    // Deleting removes what was not delivered.
    assert!(a.delete_trigger_subscription("p", "ann", "s1").await.unwrap());
    assert!(a.trigger_subscription("p", "ann", "s1").await.unwrap().is_none());
    let left = a.trigger_deliveries("p", "s1", 10).await.unwrap();
    assert!(left.iter().all(|d| d.status != "pending"), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_subscriptions_deliver_once_and_error_after_the_last_attempt_on_postgres() {
    with_fresh_db(
        "trigger_subscriptions_deliver_once_and_error_after_the_last_attempt_on_postgres",
        |url| async move {
            trigger_subscriptions_deliver_once_and_error_after_the_last_attempt(&url).await;
        },
    )
    .await;
}

#[tokio::test]
async fn trigger_subscriptions_deliver_once_and_error_after_the_last_attempt_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("para.db").display());
    trigger_subscriptions_deliver_once_and_error_after_the_last_attempt(&url).await;
}

/// Webhook registrations: one unfinished registration per key; a lease lets one holder act on
/// it and write its outcome; due ones (a retry, a renewal) are claimed by one process; a
/// registration being removed frees its key.
async fn webhook_subscriptions_are_leased_and_keyed(url: &str) {
    use para_store::webhooks::{Hook, SubscriptionUpdate};
    let a = para_store::Store::open(url).await.unwrap();
    let b = para_store::Store::open(url).await.unwrap();
    let now = para_store::now_ms();
    let hook = |id: &str| Hook {
        id: id.into(),
        project_id: "p".into(),
        user_id: "u".into(),
        integration: "github".into(),
        credential_id: "c".into(),
        workflow_id: "w".into(),
        configuration_id: String::new(),
        secret: Some("sealed".into()),
        remote_id: None,
        status: "pending".into(),
        error: None,
        expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let registration = serde_json::json!({ "trigger": "push", "parameters": { "repo": "site" } });
    assert!(a.insert_subscription(&hook("h1"), "k", &registration, "A", 60_000).await.unwrap());
    assert!(
        !b.insert_subscription(&hook("h2"), "k", &registration, "B", 60_000).await.unwrap(),
        "one unfinished registration per key"
    );
    assert!(b.lease_subscription("p", "h1", "B", 60_000).await.unwrap().is_none(), "A holds it");
    assert!(b.claim_due_subscriptions("p", "B", 10, 60_000).await.unwrap().is_empty(), "leased");
    let failed = SubscriptionUpdate {
        status: "failed".into(),
        error: Some("POST /hooks answered HTTP 500".into()),
        attempts: 1,
        next_attempt_at: Some(now - 1),
        ..SubscriptionUpdate::default()
    };
    assert!(!b.finish_subscription("p", "h1", "B", &failed).await.unwrap(), "not B's lease");
    assert!(a.finish_subscription("p", "h1", "A", &failed).await.unwrap());
    let due = b.claim_due_subscriptions("p", "B", 10, 60_000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].hook.status.as_str(), due[0].attempts), ("failed", 1));
    assert_eq!(due[0].hook.secret.as_deref(), Some("sealed"), "a failure keeps the secret");
    assert_eq!(due[0].registration, registration);
    assert!(a.claim_due_subscriptions("p", "A", 10, 60_000).await.unwrap().is_empty(), "B's now");
    let active = SubscriptionUpdate {
        status: "active".into(),
        remote_id: Some("42".into()),
        expires_at: Some(now + 3_600_000),
        next_attempt_at: Some(now + 1_800_000),
        ..SubscriptionUpdate::default()
    };
    assert!(b.finish_subscription("p", "h1", "B", &active).await.unwrap());
    assert!(a.claim_due_subscriptions("p", "A", 10, 60_000).await.unwrap().is_empty(), "not due");
    let listed = a.subscriptions_of_user("p", "u", "github").await.unwrap();
    assert_eq!(listed[0].hook.remote_id.as_deref(), Some("42"));

    // Being removed frees the key: the workflow can be registered again meanwhile.
    let leased = a.lease_subscription("p", "h1", "A", 60_000).await.unwrap().unwrap();
    assert_eq!(leased.hook.status, "active");
    let removing = SubscriptionUpdate {
        status: "removing".into(),
        remote_id: Some("42".into()),
        ..SubscriptionUpdate::default()
    };
    assert!(a.finish_subscription("p", "h1", "A", &removing).await.unwrap());
    assert!(b.insert_subscription(&hook("h3"), "k", &registration, "B", 60_000).await.unwrap());
    assert_eq!(a.subscriptions_of("p", "u", 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_subscriptions_are_leased_and_keyed_on_postgres() {
    with_fresh_db("webhook_subscriptions_are_leased_and_keyed_on_postgres", |url| async move {
        webhook_subscriptions_are_leased_and_keyed(&url).await;
    })
    .await;
}

#[tokio::test]
async fn webhook_subscriptions_are_leased_and_keyed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("para.db").display());
    webhook_subscriptions_are_leased_and_keyed(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_take_distinct_numbers_and_are_notified() {
    with_fresh_db("concurrent_pushes_take_distinct_numbers_and_are_notified", |url| async move {
        use para_store::releases::{NewRelease, RELEASES_CHANNEL};
        let store = Store::open(&url).await.unwrap();
        let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
        listener.listen(RELEASES_CHANNEL).await.unwrap();
        let pushes = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let hash = format!("sha256:{}", i % 4);
                let release = NewRelease {
                    project_id: "p",
                    hash: &hash,
                    build: "{}",
                    message: None,
                    author: None,
                    commit: None,
                };
                store.push_release(&release).await.unwrap()
            })
        });
        let mut numbers = Vec::new();
        let mut created = 0;
        for push in pushes {
            let (release, new) = push.await.unwrap();
            numbers.push(release.number);
            created += usize::from(new);
        }
        assert_eq!(created, 4, "four distinct builds are stored once each");
        let (all, current) = store.releases().await.unwrap();
        assert_eq!(all.iter().map(|r| r.number).collect::<Vec<_>>(), [4, 3, 2, 1]);
        assert!(current.is_some_and(|n| numbers.contains(&n)));
        // Every change was notified after its commit, with the number made current.
        let mut heard = Vec::new();
        while heard.len() < 8 {
            let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
                .await
                .expect("a notification within 5 s")
                .unwrap();
            heard.push(note.payload().parse::<i64>().unwrap());
        }
        heard.sort_unstable();
        numbers.sort_unstable();
        assert_eq!(heard, numbers);
    })
    .await;
}

/// The queue a scrape reports, and the readiness question, on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_runs_and_ping_on_postgres() {
    use para_store::runs::{Lease, NewRun, Write};
    with_fresh_db("due_runs_and_ping_on_postgres", |url| async move {
        let s = Store::open(&url).await.unwrap();
        s.ping().await.unwrap();
        assert_eq!(s.due_runs("p").await.unwrap().count, 0);
        assert_eq!(s.due_runs("p").await.unwrap().oldest_due_at, None);
        let run = |id: &str| NewRun {
            id: id.into(),
            project_id: "p".into(),
            user_id: "ann".into(),
            integration: "slack".into(),
            workflow_id: "wf".into(),
            trigger_kind: "cron".into(),
            trigger_input: json!({}),
            build_hash: "sha256:x".into(),
            credential_id: None,
            configuration_id: None,
        };
        let before = now_ms();
        let lease = Lease { owner: "w".into(), until: now_ms() + 30_000 };
        s.apply(&[
            Write::Create { run: run("r1"), lease: None, steps: vec![] },
            Write::Create { run: run("r2"), lease: Some(lease), steps: vec![] },
        ])
        .await
        .unwrap();
        let due = s.due_runs("p").await.unwrap();
        assert_eq!(due.count, 1);
        assert!(due.oldest_due_at.is_some_and(|t| t >= before && t <= now_ms()));
        s.close().await;
        assert!(s.ping().await.is_err());
    })
    .await;
}

/// Alerts (issue 22): an event is recorded once per source with one delivery per destination
/// that takes its type; a run's failure only with its held final write; a credential's change
/// to INVALID once however often it is marked; two senders claim each delivery once; outcomes
/// and attempts are recorded under the lease; deleting a destination drops its pending
/// deliveries; finished ones are pruned.
async fn alerts_are_recorded_once_and_delivered_under_a_lease(url: &str) {
    use para_store::alerts::{self, Destination, NewAlert};
    use para_store::runs::{Lease, NewRun, RunState, Write};
    use para_store::trigger_subscriptions::DeliveryOutcome;

    let a = Store::open(url).await.unwrap();
    let b = Store::open(url).await.unwrap();
    a.set_env_alert_destination("p", Some("https://env.example/a"), &[]).await.unwrap();
    a.set_env_alert_destination("p", Some("https://env.example/b"), &[]).await.unwrap();
    let dash = Destination {
        id: "d1".into(),
        project_id: "p".into(),
        url: "https://dash.example".into(),
        events: vec![alerts::CREDENTIAL_INVALID.into()],
        secret: Some("v1:sealed".into()),
        created_at: now_ms(),
    };
    a.insert_alert_destination(&dash).await.unwrap();
    let listed = a.alert_destinations("p").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].url.as_str(), listed[0].secret.as_deref()),
        ("https://env.example/b", None)
    );
    assert_eq!(listed[1], dash);
    assert!(a.alert_destinations("q").await.unwrap().is_empty(), "per project");

    // Connected: only the env destination takes it. Recorded once per source.
    let connected = NewAlert::new("p", alerts::CONNECTED, Some("c:1".into()), json!({}));
    assert!(a.record_alert(&connected).await.unwrap());
    let again = NewAlert::new("p", alerts::CONNECTED, Some("c:1".into()), json!({}));
    assert!(!a.record_alert(&again).await.unwrap(), "a source is recorded once");

    // A run's failure: recorded only with its held final write.
    let run = |id: &str| Write::Create {
        run: NewRun {
            id: id.into(),
            project_id: "p".into(),
            user_id: "ann".into(),
            integration: "slack".into(),
            workflow_id: "w".into(),
            trigger_kind: "event".into(),
            trigger_input: json!({}),
            build_hash: "h".into(),
            credential_id: None,
            configuration_id: None,
        },
        lease: Some(Lease { owner: "w1".into(), until: now_ms() + 60_000 }),
        steps: vec![],
    };
    a.apply(&[run("r1"), run("r2")]).await.unwrap();
    let fail = |id: &str, owner: &str| {
        let alert = NewAlert::new("p", alerts::RUN_FAILED, Some(format!("run:{id}")), json!({}));
        [
            Write::Progress {
                run_id: id.into(),
                lease: Lease { owner: owner.into(), until: now_ms() + 60_000 },
                steps: vec![],
                state: RunState::Failed("boom".into()),
                response: None,
            },
            Write::Alert { alert, after_run: Some(id.into()) },
        ]
    };
    assert_eq!(a.apply(&fail("r1", "not-the-owner")).await.unwrap(), [false, false]);
    assert_eq!(a.apply(&fail("r1", "w1")).await.unwrap(), [true, true]);

    // A credential marked INVALID twice (two processes' refreshes): announced once.
    a.touch_user("p", "ann", None).await.unwrap();
    let c = a
        .insert_credential(&para_store::NewCredential::new(
            "p",
            "ann",
            "slack",
            CredentialStatus::Valid,
            "v1:s",
        ))
        .await
        .unwrap();
    let invalid = |s: &Store| {
        let alert = NewAlert::new("p", alerts::CREDENTIAL_INVALID, None, json!({"id": c.id}));
        let s = s.clone();
        let id = c.id.clone();
        async move {
            s.update_credential_alerting(
                "p",
                "ann",
                &id,
                CredentialStatus::Invalid,
                Some("refused"),
                "v1:s",
                None,
                &alert,
            )
            .await
            .unwrap()
            .unwrap()
        }
    };
    let (one, two) = tokio::join!(invalid(&a), invalid(&b));
    assert_eq!(u8::from(one.1) + u8::from(two.1), 1, "exactly one change is announced");
    assert_eq!(one.0.status, CredentialStatus::Invalid);
    let (_, third) = invalid(&a).await;
    assert!(!third, "already INVALID: nothing more");
    // Stored INVALID at once (a failed connection test): announced with the insert.
    let alert = NewAlert::new("p", alerts::CREDENTIAL_INVALID, None, json!({"id": "c2"}));
    a.insert_credential(&para_store::NewCredential {
        id: Some("c2"),
        invalid_alert: Some(&alert),
        ..para_store::NewCredential::new("p", "ann", "slack", CredentialStatus::Invalid, "v1:s")
    })
    .await
    .unwrap();

    let events = a.alert_events("p", 100).await.unwrap();
    // Ordered by time, and several may share a millisecond: compared as a set.
    let mut kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    kinds.sort_unstable();
    let mut expected = [
        alerts::CONNECTED,
        alerts::RUN_FAILED,
        alerts::CREDENTIAL_INVALID,
        alerts::CREDENTIAL_INVALID,
    ];
    expected.sort_unstable();
    assert_eq!(kinds, expected);
    // Env takes all four; the dashboard's the two `credential.invalid`.
    let deliveries = a.alert_deliveries("p", None, 100).await.unwrap();
    assert_eq!(deliveries.len(), 6, "{deliveries:?}");
    assert_eq!(a.alert_deliveries("p", Some("d1"), 100).await.unwrap().len(), 2);

    // Two senders claim each delivery once.
    let (x, y) = tokio::join!(
        a.claim_alert_deliveries("p", "s-a", 100, 60_000),
        b.claim_alert_deliveries("p", "s-b", 100, 60_000)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 6, "{x:?} {y:?}");
    let mut keys: Vec<_> = x.iter().chain(&y).map(|d| (&d.event_id, &d.destination_id)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6);
    assert!(a.claim_alert_deliveries("p", "s-c", 100, 60_000).await.unwrap().is_empty());
    let mine = x.iter().map(|d| (d, "s-a")).chain(y.iter().map(|d| (d, "s-b")));
    let to_dash: Vec<_> = mine.clone().filter(|(d, _)| d.destination_id == "d1").collect();
    assert_eq!(to_dash[0].0.secret.as_deref(), Some("v1:sealed"));
    let env_one = mine.clone().find(|(d, _)| d.destination_id != "d1").unwrap();
    assert_eq!(env_one.0.url, "https://env.example/b");
    assert_eq!(env_one.0.secret, None);

    // Outcomes under the lease, each attempt recorded.
    let (d, owner) = env_one;
    let retry = DeliveryOutcome::Retry { at: now_ms() - 1, status: Some(500), error: "500".into() };
    assert!(
        !a.finish_alert_delivery("intruder", &d.event_id, &d.destination_id, &retry).await.unwrap()
    );
    assert!(a.finish_alert_delivery(owner, &d.event_id, &d.destination_id, &retry).await.unwrap());
    let again = a.claim_alert_deliveries("p", "s-a", 100, 60_000).await.unwrap();
    assert_eq!(again.len(), 1, "due again");
    assert_eq!(again[0].attempts, 1);
    let delivered = DeliveryOutcome::Delivered { status: 204 };
    assert!(
        a.finish_alert_delivery("s-a", &d.event_id, &d.destination_id, &delivered).await.unwrap()
    );
    let attempts = a.alert_attempts(&d.event_id, &d.destination_id).await.unwrap();
    let seen: Vec<_> = attempts.iter().map(|t| (t.attempt, t.status)).collect();
    assert_eq!(seen, [(1, Some(500)), (2, Some(204))]);
    let failed = DeliveryOutcome::Failed { status: None, error: "gave up".into() };
    let (f, f_owner) =
        mine.clone().find(|(x, _)| x.event_id != d.event_id && x.destination_id != "d1").unwrap();
    assert!(
        a.finish_alert_delivery(f_owner, &f.event_id, &f.destination_id, &failed).await.unwrap()
    );

    // Deleting the dashboard's destination drops its pending deliveries; the env one stays.
    assert!(!a.delete_alert_destination("p", &alerts::env_id("p")).await.unwrap());
    assert!(a.delete_alert_destination("p", "d1").await.unwrap());
    assert!(a.alert_deliveries("p", Some("d1"), 100).await.unwrap().is_empty());
    assert_eq!(a.alert_destinations("p").await.unwrap().len(), 1);

    // Pruning: the delivered and the failed one go (both finished before now + 1).
    let later = now_ms() + 1;
    assert_eq!(a.prune_alerts("p", later, later).await.unwrap(), 2);
    assert!(a.alert_attempts(&d.event_id, &d.destination_id).await.unwrap().is_empty());
    assert_eq!(a.alert_deliveries("p", None, 100).await.unwrap().len(), 2);
    let left = a.alert_events("p", 100).await.unwrap();
    assert_eq!(left.len(), 2, "events with deliveries left stay: {left:?}");
    // Unsetting the variable removes the deployment's destination and its pending deliveries.
    a.set_env_alert_destination("p", None, &[]).await.unwrap();
    assert!(a.alert_destinations("p").await.unwrap().is_empty());
    assert!(a.alert_deliveries("p", None, 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_recorded_once_and_delivered_under_a_lease_on_postgres() {
    with_fresh_db(
        "alerts_are_recorded_once_and_delivered_under_a_lease_on_postgres",
        |url| async move {
            alerts_are_recorded_once_and_delivered_under_a_lease(&url).await;
        },
    )
    .await;
}

#[tokio::test]
async fn alerts_are_recorded_once_and_delivered_under_a_lease_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("para.db").display());
    alerts_are_recorded_once_and_delivered_under_a_lease(&url).await;
}
