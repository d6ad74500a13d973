//! One conformance suite for every store: each store's test file instantiates it with
//! `conformance_suite!(async constructor)`.
#![allow(dead_code, unreachable_pub)]

use serde_json::Map;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::test_support::generate_id;
use tower_auth_session::{Session, SessionStore, StorageKey, User};

pub const NOW: OffsetDateTime = datetime!(2026-11-23 12:00:00.123 UTC);

/// What the suite needs besides the trait: putting users in and taking them out.
pub trait Harness: SessionStore + Clone {
    /// Stores `user` and returns it as stored (a SQL store with uuid or serial ids gives it
    /// another id).
    fn add_user(&self, user: &User) -> impl std::future::Future<Output = User> + Send;
    fn delete_user_row(&self, id: &str) -> impl std::future::Future<Output = ()> + Send;
    /// Whether `delete_expired` removes rows (SQL) rather than leaving expiry to TTLs (Redis).
    fn sweeps(&self) -> bool {
        true
    }
    /// Whether `end_session` keeps the row, ended, where `find` still reads it (SQL and
    /// memory stores); the others delete, as the trait's default does.
    fn keeps_ended_rows(&self) -> bool {
        false
    }
}

/// Every SQL store: users are rows of the user table.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl<D: tower_auth_session::store::Dialect> Harness for tower_auth_session::store::SqlStore<D> {
    async fn add_user(&self, user: &User) -> User {
        self.insert_user(user).await.unwrap()
    }
    async fn delete_user_row(&self, id: &str) {
        self.delete_user(id).await.unwrap();
    }
    fn keeps_ended_rows(&self) -> bool {
        true
    }
}

/// Redis keeps the user inside each session value; Better Auth's deleteUser revokes the user's
/// sessions in secondary storage.
#[cfg(feature = "redis")]
impl Harness for tower_auth_session::store::RedisStore {
    async fn add_user(&self, user: &User) -> User {
        user.clone()
    }
    async fn delete_user_row(&self, id: &str) {
        self.delete_user_sessions(id).await.unwrap();
    }
    fn sweeps(&self) -> bool {
        false
    }
}

pub fn user(tag: &str) -> User {
    User::new(&format!("{tag}-{}@example.com", generate_id(6)), tag, NOW)
}

pub fn session(user: &User, expires_at: OffsetDateTime) -> Session {
    Session {
        id: generate_id(32),
        token: generate_id(32),
        user_id: user.id.clone(),
        expires_at,
        created_at: NOW,
        updated_at: NOW,
        ip_address: Some("127.0.0.1".into()),
        user_agent: Some("conformance/1.0".into()),
        extra: Map::new(),
    }
}

async fn with_session<S: Harness>(store: &S, expires_at: OffsetDateTime) -> (User, Session) {
    let u = store.add_user(&user("u")).await;
    let s = store.create(&session(&u, expires_at), &u).await.unwrap();
    (u, s)
}

pub async fn find_returns_what_create_wrote<S: Harness>(store: S) {
    let (u, s) = with_session(&store, NOW + Duration::days(7)).await;
    let found = store
        .find(&s.storage_key())
        .await
        .unwrap()
        .expect("session found by token");
    assert_eq!(found.session.id, s.id);
    assert_eq!(found.session.token, s.token);
    assert_eq!(found.session.user_id, u.id);
    assert_eq!(found.session.expires_at, s.expires_at);
    assert_eq!(found.session.created_at, s.created_at);
    assert_eq!(found.session.updated_at, s.updated_at);
    assert_eq!(found.session.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(found.session.user_agent.as_deref(), Some("conformance/1.0"));
    assert_eq!(found.user.id, u.id);
    assert_eq!(found.user.email, u.email);
    assert_eq!(found.user.name, u.name);
    assert!(!found.user.email_verified);
    assert_eq!(found.user.created_at, u.created_at);
}

pub async fn find_is_by_token_not_id<S: Harness>(store: S) {
    let (_, s) = with_session(&store, NOW + Duration::days(7)).await;
    assert!(
        store.find(&StorageKey::new(&s.id)).await.unwrap().is_none(),
        "the id is not the token"
    );
    assert!(store
        .find(&StorageKey::new("no-such-token"))
        .await
        .unwrap()
        .is_none());
    assert!(store.find(&StorageKey::new("")).await.unwrap().is_none());
}

pub async fn find_many_answers_each_key_in_order<S: Harness>(store: S) {
    let (_, a) = with_session(&store, NOW + Duration::days(7)).await;
    let (_, b) = with_session(&store, NOW + Duration::days(7)).await;
    let (gone_user, gone) = with_session(&store, NOW + Duration::days(7)).await;
    store.delete_user_row(&gone_user.id).await;
    assert!(store.find_many(&[]).await.unwrap().is_empty());
    // More keys than one batch of the SQL stores (64), the sessions at both ends and across
    // the boundary, one of them twice, among unknown tokens and a session whose user is gone.
    let mut keys: Vec<StorageKey<'_>> = (0..70)
        .map(|i| StorageKey::new(format!("no-such-token-{i}")))
        .collect();
    keys[0] = b.storage_key();
    keys[63] = a.storage_key();
    keys[64] = b.storage_key();
    keys[66] = gone.storage_key();
    keys[69] = a.storage_key();
    let found = store.find_many(&keys).await.unwrap();
    assert_eq!(found.len(), keys.len(), "one answer per key");
    for (i, answer) in found.iter().enumerate() {
        let expected = match i {
            0 | 64 => Some(&b),
            63 | 69 => Some(&a),
            _ => None,
        };
        match (answer, expected) {
            (Some(got), Some(want)) => {
                assert_eq!(got.session.token, want.token, "key {i}");
                assert_eq!(got.session.user_id, want.user_id, "key {i}");
                assert_eq!(got.user.id, want.user_id, "key {i}");
                assert_eq!(got.session.expires_at, want.expires_at, "key {i}");
            }
            (None, None) => {}
            _ => panic!("key {i}: got {answer:?}, expected {expected:?}"),
        }
    }
    // The same answers as `find`, one key at a time.
    let one = store.find_many(&[a.storage_key()]).await.unwrap();
    let by_find = store.find(&a.storage_key()).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].as_ref().map(|f| (&f.session.id, &f.user.email)),
        by_find.as_ref().map(|f| (&f.session.id, &f.user.email))
    );
}

pub async fn extend_moves_expiry_forward_only<S: Harness>(store: S) {
    let (_, s) = with_session(&store, NOW + Duration::days(6)).await;
    let later = NOW + Duration::days(7);
    let updated = store
        .extend(&s.storage_key(), later, NOW)
        .await
        .unwrap()
        .expect("extended");
    assert_eq!(updated.expires_at, later);
    assert_eq!(updated.updated_at, NOW);
    assert_eq!(updated.created_at, s.created_at, "createdAt never changes");
    let found = store.find(&s.storage_key()).await.unwrap().unwrap().session;
    assert_eq!(found.expires_at, later);

    // Never shortens, and an equal expiry writes nothing.
    assert!(store
        .extend(&s.storage_key(), NOW + Duration::days(1), NOW)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .extend(&s.storage_key(), later, NOW)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .find(&s.storage_key())
            .await
            .unwrap()
            .unwrap()
            .session
            .expires_at,
        later
    );
}

/// Many refreshes at the same moment (three per session: shorter, later, latest) answer as if
/// they had run one at a time in some order: each caller gets its own session's row, extended at
/// least to its own expiry, or nothing; the shorter one never wins, and the latest one always
/// lands. (SQLite batches the refreshes waiting for its writer into one statement; MySQL, without
/// `RETURNING`, reads the row back after its update, so it may already show a later refresh.)
pub async fn concurrent_extends_answer_as_one_at_a_time<S: Harness>(store: S) {
    let mut sessions = Vec::new();
    for _ in 0..40 {
        sessions.push(with_session(&store, NOW + Duration::days(6)).await.1);
    }
    let days = [1, 7, 8];
    let calls = sessions.iter().flat_map(|s| {
        let store = store.clone();
        days.map(move |d| {
            let store = store.clone();
            let key = s.storage_key();
            async move {
                let answer = store.extend(&key, NOW + Duration::days(d), NOW).await;
                (key.as_str().to_owned(), d, answer.unwrap())
            }
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    assert_eq!(answers.len(), 120);
    for (key, d, answer) in answers {
        match (d, answer) {
            (1, Some(_)) => panic!("a shorter expiry was written"),
            (8, None) => panic!("the latest expiry was refused"),
            (_, Some(row)) => {
                assert_eq!(row.token, key, "each caller gets its own session's row");
                assert!(row.expires_at >= NOW + Duration::days(d));
                assert!(row.expires_at <= NOW + Duration::days(8));
                assert_eq!(row.updated_at, NOW);
            }
            (_, None) => {}
        }
    }
    for s in &sessions {
        let found = store.find(&s.storage_key()).await.unwrap().unwrap().session;
        assert_eq!(found.expires_at, NOW + Duration::days(8));
    }
}

pub async fn extend_never_resurrects<S: Harness>(store: S) {
    // Expired one millisecond ago: not live, so not extended.
    let (_, s) = with_session(&store, NOW - Duration::milliseconds(1)).await;
    assert!(store
        .extend(&s.storage_key(), NOW + Duration::days(7), NOW)
        .await
        .unwrap()
        .is_none());
    // Expiring exactly now is still live.
    let (_, t) = with_session(&store, NOW).await;
    assert!(store
        .extend(&t.storage_key(), NOW + Duration::days(7), NOW)
        .await
        .unwrap()
        .is_some());
    // Deleted: nothing to extend, and nothing comes back.
    let (_, d) = with_session(&store, NOW + Duration::days(6)).await;
    store.delete(&d.storage_key()).await.unwrap();
    assert!(store
        .extend(&d.storage_key(), NOW + Duration::days(7), NOW)
        .await
        .unwrap()
        .is_none());
    assert!(store.find(&d.storage_key()).await.unwrap().is_none());
}

pub async fn delete_one<S: Harness>(store: S) {
    let (u, a) = with_session(&store, NOW + Duration::days(7)).await;
    let b = session(&u, NOW + Duration::days(7));
    let b = store.create(&b, &u).await.unwrap();
    store.delete(&a.storage_key()).await.unwrap();
    assert!(store.find(&a.storage_key()).await.unwrap().is_none());
    assert!(
        store.find(&b.storage_key()).await.unwrap().is_some(),
        "only that session"
    );
    store.delete(&a.storage_key()).await.unwrap();
    store
        .delete(&StorageKey::new("never-existed"))
        .await
        .unwrap();
}

pub async fn delete_if_expired_spares_a_live_session<S: Harness>(store: S) {
    // Another instance extended it a moment ago: an instance that saw it expired must not
    // delete it.
    let (_, live) = with_session(&store, NOW + Duration::days(7)).await;
    store
        .delete_if_expired(&live.storage_key(), NOW)
        .await
        .unwrap();
    assert!(store.find(&live.storage_key()).await.unwrap().is_some());
    let (_, old) = with_session(&store, NOW + Duration::seconds(1)).await;
    store
        .delete_if_expired(&old.storage_key(), NOW + Duration::seconds(2))
        .await
        .unwrap();
    assert!(store.find(&old.storage_key()).await.unwrap().is_none());
}

pub async fn revoke_all_for_user<S: Harness>(store: S) {
    let (u, a) = with_session(&store, NOW + Duration::days(7)).await;
    let b = session(&u, NOW + Duration::days(3));
    let b = store.create(&b, &u).await.unwrap();
    let (_, other) = with_session(&store, NOW + Duration::days(7)).await;
    let n = store.delete_user_sessions(&u.id).await.unwrap();
    assert!(
        n == 2 || n == 0,
        "count is 2 where the store can tell, got {n}"
    );
    assert!(store.find(&a.storage_key()).await.unwrap().is_none());
    assert!(store.find(&b.storage_key()).await.unwrap().is_none());
    assert!(
        store.find(&other.storage_key()).await.unwrap().is_some(),
        "other users untouched"
    );
}

/// `end_session` and `end_user_sessions` (Better Auth's `preserveSessionInDatabase`): live
/// sessions end at `now`, keeping their rows where the store keeps rows; sessions already
/// over keep their expiry; other users' sessions are untouched.
/// The expiry and update time `find` reads for `s`, if it finds it.
async fn ended<S: Harness>(store: &S, s: &Session) -> Option<(OffsetDateTime, OffsetDateTime)> {
    store
        .find(&s.storage_key())
        .await
        .unwrap()
        .map(|f| (f.session.expires_at, f.session.updated_at))
}

pub async fn end_sessions_keeping_their_rows<S: Harness>(store: S) {
    let (u, a) = with_session(&store, NOW + Duration::days(7)).await;
    let b = store
        .create(&session(&u, NOW + Duration::days(3)), &u)
        .await
        .unwrap();
    let over = store
        .create(&session(&u, NOW - Duration::hours(1)), &u)
        .await
        .unwrap();
    let (_, other) = with_session(&store, NOW + Duration::days(7)).await;
    let later = NOW + Duration::seconds(1);

    store.end_session(&a.storage_key(), later).await.unwrap();
    let live = store.list_user_sessions(&u.id, later).await.unwrap();
    assert_eq!(
        live.iter().map(|s| &s.token).collect::<Vec<_>>(),
        [&b.token]
    );
    let n = store.end_user_sessions(&u.id, later).await.unwrap();
    assert!(store
        .list_user_sessions(&u.id, later)
        .await
        .unwrap()
        .is_empty());
    if store.keeps_ended_rows() {
        assert_eq!(n, 1, "only the session still live was ended");
        for s in [&a, &b] {
            assert_eq!(
                ended(&store, s).await,
                Some((later, later)),
                "row kept, ended"
            );
        }
        assert_eq!(
            ended(&store, &over).await.map(|(expires, _)| expires),
            Some(over.expires_at),
            "a session already over keeps its expiry"
        );
    } else {
        for s in [&a, &b] {
            assert_eq!(ended(&store, s).await, None);
        }
    }
    let untouched = store.find(&other.storage_key()).await.unwrap().unwrap();
    assert_eq!(untouched.session.expires_at, other.expires_at);
}

pub async fn list_live_sessions_in_expiry_order<S: Harness>(store: S) {
    let (u, late) = with_session(&store, NOW + Duration::days(7)).await;
    let early = session(&u, NOW + Duration::hours(1));
    let early = store.create(&early, &u).await.unwrap();
    let exact = session(&u, NOW);
    store.create(&exact, &u).await.unwrap();
    let expired = session(&u, NOW - Duration::hours(1));
    store.create(&expired, &u).await.unwrap();
    let (_, _someone_else) = with_session(&store, NOW + Duration::days(7)).await;

    let list = store.list_user_sessions(&u.id, NOW).await.unwrap();
    let tokens: Vec<&str> = list.iter().map(|s| s.token.as_str()).collect();
    assert_eq!(
        tokens,
        [early.token.as_str(), late.token.as_str()],
        "expiresAt > now, earliest first"
    );
    assert!(store
        .list_user_sessions("nobody", NOW)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delete_expired_sessions<S: Harness>(store: S) {
    let (u, live) = with_session(&store, NOW + Duration::days(1)).await;
    let exact = session(&u, NOW);
    let exact = store.create(&exact, &u).await.unwrap();
    let old = session(&u, NOW - Duration::milliseconds(1));
    let old = store.create(&old, &u).await.unwrap();
    let n = store.delete_expired(NOW).await.unwrap();
    if store.sweeps() {
        assert!(n >= 1, "deleted {n}");
        assert!(store.find(&old.storage_key()).await.unwrap().is_none());
    }
    assert!(
        store.find(&exact.storage_key()).await.unwrap().is_some(),
        "expiresAt == now is not expired"
    );
    assert!(store.find(&live.storage_key()).await.unwrap().is_some());
}

pub async fn delete_expired_batch_is_bounded<S: Harness>(store: S) {
    let u = store.add_user(&user("b")).await;
    let mut old = Vec::new();
    for _ in 0..3 {
        let s = session(&u, NOW - Duration::milliseconds(1));
        old.push(store.create(&s, &u).await.unwrap());
    }
    let live = session(&u, NOW + Duration::days(1));
    let live = store.create(&live, &u).await.unwrap();
    let first = store.delete_expired_batch(NOW, 2).await.unwrap();
    if store.sweeps() {
        assert_eq!(first, 2, "at most the limit");
        assert_eq!(
            store.delete_expired_batch(NOW, 2).await.unwrap(),
            1,
            "then the rest"
        );
        assert_eq!(store.delete_expired_batch(NOW, 2).await.unwrap(), 0);
        for s in &old {
            assert!(store.find(&s.storage_key()).await.unwrap().is_none());
        }
    }
    assert!(store.find(&live.storage_key()).await.unwrap().is_some());
}

pub async fn deleted_user_never_authenticates<S: Harness>(store: S) {
    let (u, s) = with_session(&store, NOW + Duration::days(7)).await;
    store.delete_user_row(&u.id).await;
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
}

/// `remove_user` (Better Auth's `deleteUser`): the user's sessions stop authenticating, other
/// users' do not, and a store that holds users (it says so) no longer has the row.
pub async fn remove_user_takes_the_users_sessions_with_it<S: Harness>(store: S) {
    let (u, s) = with_session(&store, NOW + Duration::days(7)).await;
    let (_, other) = with_session(&store, NOW + Duration::days(7)).await;
    let held = SessionStore::remove_user(&store, &u.id).await.unwrap();
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
    assert!(store.find(&other.storage_key()).await.unwrap().is_some());
    assert!(store
        .list_user_sessions(&u.id, NOW)
        .await
        .unwrap()
        .is_empty());
    if held {
        assert!(store.find_user(&u.id).await.unwrap().is_none());
    }
}

/// Instantiates every conformance test for a store. `$make` is an async block yielding
/// `Option<store>` (`None` skips, for servers that are not available).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            find_returns_what_create_wrote,
            find_is_by_token_not_id,
            find_many_answers_each_key_in_order,
            extend_moves_expiry_forward_only,
            extend_never_resurrects,
            concurrent_extends_answer_as_one_at_a_time,
            delete_one,
            delete_if_expired_spares_a_live_session,
            revoke_all_for_user,
            end_sessions_keeping_their_rows,
            list_live_sessions_in_expiry_order,
            delete_expired_sessions,
            delete_expired_batch_is_bounded,
            deleted_user_never_authenticates,
            remove_user_takes_the_users_sessions_with_it
        );
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some(store) = $make.await {
                    $crate::conformance::$name(store).await;
                }
            }
        )*
    };
}
