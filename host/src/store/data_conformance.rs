//! The per-app data suite ([`AppDataStore`]) both stores pass: versions,
//! conflicts, quotas, queries, and above all that one app (or user) never
//! sees or changes another's documents.

use std::sync::Arc;

use mozaiks_plugin_host::{DataFilter, DataLimits, DataQuery};
use serde_json::{Value, json};

use super::data::{AppDataStore, DataOwner, DataStoreError};

const LIMITS: DataLimits = DataLimits {
    max_document_bytes: 1024,
    max_documents_per_app: 3,
};

fn all(limit: usize) -> DataQuery {
    DataQuery {
        limit,
        ..DataQuery::default()
    }
}

fn ids(docs: &[mozaiks_plugin_host::DataDocument]) -> Vec<&str> {
    docs.iter().map(|d| d.id.as_str()).collect()
}

async fn put(store: &dyn AppDataStore, owner: &DataOwner, id: &str, body: Value) -> u64 {
    store
        .put_document(owner, "orders", id, &body, None, &LIMITS)
        .await
        .unwrap()
}

pub(super) async fn writes_and_reads_back_a_document_with_its_version(store: &dyn AppDataStore) {
    let app = DataOwner::app("a1");
    assert_eq!(
        store.get_document(&app, "orders", "o1").await.unwrap(),
        None
    );
    let body = json!({ "n": 1, "big": 12345678901234567_u64, "f": 0.1, "nested": { "x": null } });
    assert_eq!(put(store, &app, "o1", body.clone()).await, 1);
    let doc = store
        .get_document(&app, "orders", "o1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((doc.id.as_str(), doc.version, &doc.body), ("o1", 1, &body));
    assert_eq!(put(store, &app, "o1", json!({ "n": 2 })).await, 2);
    let doc = store
        .get_document(&app, "orders", "o1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((doc.version, doc.body), (2, json!({ "n": 2 })));
}

pub(super) async fn refuses_a_write_or_removal_at_another_version(store: &dyn AppDataStore) {
    let app = DataOwner::app("a1");
    let err = store
        .put_document(&app, "orders", "o1", &json!({}), Some(1), &LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DataStoreError::Conflict { found: None }),
        "{err:?}"
    );
    let v = store
        .put_document(&app, "orders", "o1", &json!({ "n": 1 }), Some(0), &LIMITS)
        .await
        .unwrap();
    assert_eq!(v, 1);
    let err = store
        .put_document(&app, "orders", "o1", &json!({}), Some(0), &LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DataStoreError::Conflict { found: Some(1) }),
        "{err:?}"
    );
    let v = store
        .put_document(&app, "orders", "o1", &json!({ "n": 2 }), Some(1), &LIMITS)
        .await
        .unwrap();
    assert_eq!(v, 2);
    let err = store
        .remove_document(&app, "orders", "o1", Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DataStoreError::Conflict { found: Some(2) }),
        "{err:?}"
    );
    assert!(
        store
            .remove_document(&app, "orders", "o1", Some(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_document(&app, "orders", "o1", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_document(&app, "orders", "o1").await.unwrap(),
        None
    );
}

pub(super) async fn enforces_the_document_size_and_the_count_per_app(store: &dyn AppDataStore) {
    let app = DataOwner::app("a1");
    let big = json!({ "text": "x".repeat(LIMITS.max_document_bytes) });
    let err = store
        .put_document(&app, "orders", "big", &big, None, &LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DataStoreError::TooLarge { max: 1024, .. }),
        "{err:?}"
    );
    put(store, &app, "o1", json!({})).await;
    put(store, &app, "o2", json!({})).await;
    // The app's users count with the app.
    put(store, &DataOwner::user("a1", "u1"), "o3", json!({})).await;
    let err = store
        .put_document(&app, "other", "o4", &json!({}), None, &LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DataStoreError::QuotaExceeded { app, max: 3 } if app == "a1"),
        "{err:?}"
    );
    // Rewriting a document it holds is not a new one; another app has its own count.
    assert_eq!(put(store, &app, "o1", json!({ "n": 1 })).await, 2);
    put(store, &DataOwner::app("a2"), "o1", json!({})).await;
    assert!(
        store
            .remove_document(&app, "orders", "o2", None)
            .await
            .unwrap()
    );
    put(store, &app, "o4", json!({})).await;
}

pub(super) async fn queries_by_dotted_fields_in_id_order_with_paging(store: &dyn AppDataStore) {
    let app = DataOwner::app("a1");
    let limits = DataLimits::default();
    for (id, status, customer) in [
        ("c", "open", "k1"),
        ("a", "open", "k2"),
        ("b", "paid", "k1"),
    ] {
        store
            .put_document(
                &app,
                "orders",
                id,
                &json!({ "status": status, "customer": { "id": customer } }),
                None,
                &limits,
            )
            .await
            .unwrap();
    }
    store
        .put_document(
            &app,
            "invoices",
            "a",
            &json!({ "status": "open" }),
            None,
            &limits,
        )
        .await
        .unwrap();
    let found = store
        .query_documents(&app, "orders", &all(10))
        .await
        .unwrap();
    assert_eq!(ids(&found), ["a", "b", "c"]);
    let open = DataQuery {
        filters: vec![DataFilter {
            path: "status".to_owned(),
            value: json!("open"),
        }],
        limit: 10,
        after_id: None,
    };
    assert_eq!(
        ids(&store.query_documents(&app, "orders", &open).await.unwrap()),
        ["a", "c"]
    );
    let k1_open = DataQuery {
        filters: vec![
            open.filters[0].clone(),
            DataFilter {
                path: "customer.id".to_owned(),
                value: json!("k1"),
            },
        ],
        ..open.clone()
    };
    assert_eq!(
        ids(&store
            .query_documents(&app, "orders", &k1_open)
            .await
            .unwrap()),
        ["c"]
    );
    let first = store
        .query_documents(&app, "orders", &all(2))
        .await
        .unwrap();
    assert_eq!(ids(&first), ["a", "b"]);
    let next = DataQuery {
        after_id: Some("b".to_owned()),
        ..all(2)
    };
    assert_eq!(
        ids(&store.query_documents(&app, "orders", &next).await.unwrap()),
        ["c"]
    );
}

pub(super) async fn keeps_each_apps_and_users_documents_apart(store: &dyn AppDataStore) {
    let (a, b) = (DataOwner::app("app-a"), DataOwner::app("app-b"));
    let a_user = DataOwner::user("app-a", "u1");
    let a_other_user = DataOwner::user("app-a", "u2");
    // The same user id in another app is another user.
    let b_user = DataOwner::user("app-b", "u1");
    put(store, &a, "o1", json!({ "owner": "a" })).await;
    put(store, &a_user, "o1", json!({ "owner": "a/u1" })).await;

    for stranger in [&b, &b_user, &a_other_user] {
        assert_eq!(
            store.get_document(stranger, "orders", "o1").await.unwrap(),
            None,
            "{stranger:?}"
        );
        assert!(
            store
                .query_documents(stranger, "orders", &all(10))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .remove_document(stranger, "orders", "o1", None)
                .await
                .unwrap()
        );
        let err = store
            .put_document(stranger, "orders", "o1", &json!({}), Some(1), &LIMITS)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DataStoreError::Conflict { found: None }),
            "{err:?}"
        );
    }
    // Writing "the same" document elsewhere makes a new one and changes nothing here.
    assert_eq!(put(store, &b, "o1", json!({ "owner": "b" })).await, 1);
    let doc = store
        .get_document(&a, "orders", "o1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((doc.version, doc.body), (1, json!({ "owner": "a" })));
    let doc = store
        .get_document(&a_user, "orders", "o1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.body, json!({ "owner": "a/u1" }));
    let only_app = store.query_documents(&a, "orders", &all(10)).await.unwrap();
    assert_eq!(only_app.len(), 1);
    assert_eq!(only_app[0].body, json!({ "owner": "a" }));
}

pub(super) async fn gives_each_concurrent_write_its_own_version(store: Arc<dyn AppDataStore>) {
    let app = DataOwner::app("a1");
    let limits = DataLimits::default();
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let (store, app) = (Arc::clone(&store), app.clone());
            tokio::spawn(async move {
                store
                    .put_document(&app, "counters", "c", &json!({ "by": n }), None, &limits)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for w in writers {
        versions.push(w.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
}

macro_rules! cases {
    ($on:ident) => {
        $on!(
            writes_and_reads_back_a_document_with_its_version,
            refuses_a_write_or_removal_at_another_version,
            enforces_the_document_size_and_the_count_per_app,
            queries_by_dotted_fields_in_id_order_with_paging,
            keeps_each_apps_and_users_documents_apart,
        );
    };
}

/// The suite on the embedded store.
mod embedded {
    use super::*;
    use crate::store::EmbeddedStore;

    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!(
                "mozaiks-data-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            )))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    macro_rules! on_a_fresh_store {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let dir = TempDir::new();
                let store = EmbeddedStore::open(&dir.0).unwrap();
                super::$name(store.app_documents().as_ref()).await;
            }
        )*};
    }

    cases!(on_a_fresh_store);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn gives_each_concurrent_write_its_own_version() {
        let dir = TempDir::new();
        let store = EmbeddedStore::open(&dir.0).unwrap();
        super::gives_each_concurrent_write_its_own_version(store.app_documents()).await;
    }

    #[tokio::test]
    async fn retention_leaves_the_apps_documents() {
        use crate::store::ChatStore as _;
        let dir = TempDir::new();
        let store = EmbeddedStore::open(&dir.0).unwrap();
        let app = DataOwner::app("a1");
        put(store.app_documents().as_ref(), &app, "o1", json!({})).await;
        store.delete_ended_before(u64::MAX).await.unwrap();
        let doc = store
            .app_documents()
            .get_document(&app, "orders", "o1")
            .await
            .unwrap();
        assert!(doc.is_some());
    }

    #[tokio::test]
    async fn keeps_documents_across_a_restart() {
        let dir = TempDir::new();
        let app = DataOwner::app("a1");
        {
            let store = EmbeddedStore::open(&dir.0).unwrap();
            put(
                store.app_documents().as_ref(),
                &app,
                "o1",
                json!({ "n": 1 }),
            )
            .await;
        }
        let store = EmbeddedStore::open(&dir.0).unwrap();
        let doc = store
            .app_documents()
            .get_document(&app, "orders", "o1")
            .await
            .unwrap();
        assert_eq!(doc.map(|d| d.body), Some(json!({ "n": 1 })));
    }
}

/// The suite on MongoDB (the test server), a database per test.
mod mongo {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt as _;

    use super::*;
    use crate::store::MongoStore;
    use crate::store::mongo::test_server;

    async fn on_a_fresh_database<F, Fut>(test: F)
    where
        F: FnOnce(Arc<dyn AppDataStore>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let config =
            test_server::config(&format!("mozaiks_data_{}", uuid::Uuid::new_v4().simple()));
        let store = MongoStore::connect(&config).await.unwrap();
        let outcome = AssertUnwindSafe(test(store.app_documents()))
            .catch_unwind()
            .await;
        mongodb::Client::with_uri_str(&config.uri)
            .await
            .unwrap()
            .database(&config.database)
            .drop()
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    macro_rules! on_a_fresh_database {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                on_a_fresh_database(|store| async move { super::$name(store.as_ref()).await }).await;
            }
        )*};
    }

    cases!(on_a_fresh_database);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn gives_each_concurrent_write_its_own_version() {
        on_a_fresh_database(super::gives_each_concurrent_write_its_own_version).await;
    }
}
