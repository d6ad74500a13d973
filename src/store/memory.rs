use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use super::key::{Key, Slots};
use super::SessionStore;
use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};

/// An in-process store for tests, demos and single-process apps that accept losing every
/// session on restart. Cloning shares the same data.
///
/// It holds users as well as sessions, so a user removed with
/// [`delete_user`](MemoryStore::delete_user) stops authenticating at once, as a `user` row
/// deleted under Better Auth's `ON DELETE CASCADE` would.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use time::OffsetDateTime;
/// use tower_auth_session::{MemoryStore, SessionStore, StorageKey, User};
///
/// let store = MemoryStore::new();
/// let user = User::new("alice@example.com", "Alice", OffsetDateTime::now_utc());
/// store.insert_user(user.clone());
/// assert_eq!(store.find_user_by_email("ALICE@example.com").unwrap().id, user.id);
/// assert!(store.find(&StorageKey::new("no-such-token")).await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
}

/// foldhash rather than SipHash: a lookup hashes one 32-character token per request, and keys
/// are tokens and ids this crate generated (a request can look keys up, never choose them), so
/// a seeded fast hash is enough.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// One record per session, holding its user: a lookup is one probe, and the user row is shared
/// by all of that user's sessions (`Arc`), not copied. A user's first session allocates the
/// user row again next to its own (see `create`), so a lookup's two records sit together. The
/// token is kept in the table itself, so comparing it follows no pointer: with many sessions,
/// each pointer is a cache miss.
#[derive(Debug, Default)]
struct Inner {
    sessions: Slots<Authenticated>,
    /// The hasher of `sessions`' tokens.
    hasher: foldhash::fast::RandomState,
    users: Map<Arc<User>>,
}

impl Inner {
    fn hash(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    fn get(&self, token: &[u8]) -> Option<&Authenticated> {
        self.sessions.get(self.hash(token), token).map(|s| &s.value)
    }

    fn get_mut(&mut self, token: &[u8]) -> Option<&mut Authenticated> {
        let hash = self.hash(token);
        self.sessions.get_mut(hash, token)
    }

    fn insert(&mut self, token: &str, auth: Authenticated) {
        let hash = self.hash(token.as_bytes());
        self.sessions.insert(hash, token, auth, &self.hasher);
    }

    fn remove(&mut self, token: &[u8]) {
        let hash = self.hash(token);
        self.sessions.remove(hash, token);
    }

    /// Keeps the sessions `keep` accepts; returns how many it dropped.
    fn retain(&mut self, mut keep: impl FnMut(&Session) -> bool) -> u64 {
        self.sessions.retain(|a| keep(&a.session))
    }

    /// Points every session of `user` at this version of the row.
    fn share_user(&mut self, user: &Arc<User>) {
        for auth in self.sessions.values_mut() {
            if auth.session.user_id == user.id {
                auth.user = Arc::clone(user);
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every write is a
        // single insert or retain), so a poisoned lock is still safe to use.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a user (its sessions see the new row).
    pub fn insert_user(&self, user: User) {
        let user = Arc::new(user);
        let mut inner = self.write();
        if inner
            .users
            .insert(user.id.clone(), Arc::clone(&user))
            .is_some()
        {
            inner.share_user(&user);
        }
    }

    /// Removes a user and, like `ON DELETE CASCADE`, all of their sessions.
    pub fn delete_user(&self, user_id: &str) {
        let mut inner = self.write();
        inner.users.remove(user_id);
        inner.retain(|s| s.user_id != user_id);
    }

    /// The user with this e-mail address, compared case-insensitively.
    pub fn find_user_by_email(&self, email: &str) -> Option<User> {
        let email = email.to_lowercase();
        self.read()
            .users
            .values()
            .find(|u| u.email == email)
            .map(|u| (**u).clone())
    }

    /// The session `token` and its user: one probe, two pointers copied (not the strings).
    fn lookup(&self, token: &str) -> Option<Authenticated> {
        self.read().get(token.as_bytes()).cloned()
    }

    /// The number of sessions held, expired ones included.
    pub fn session_count(&self) -> usize {
        self.read().sessions.len()
    }
}

impl SessionStore for MemoryStore {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        Ok(self.lookup(key.as_str()))
    }

    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        Some(Ok(self.lookup(key.as_str())))
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let mut inner = self.write();
        let row = session.clone();
        let shared = inner
            .users
            .get(&user.id)
            .filter(|stored| Arc::strong_count(stored) > 1)
            .map(Arc::clone);
        let auth = match shared {
            Some(user) => Authenticated {
                session: Arc::new(row),
                user,
            },
            // The user's first live session (the store alone holds the row, if it has one):
            // the row is allocated again, right after the session's, so that a lookup finds the
            // two together in memory rather than the user where `insert_user` put it.
            None => {
                let user_row = inner
                    .users
                    .get(&user.id)
                    .map_or_else(|| user.clone(), |stored| (**stored).clone());
                let session = Arc::new(row);
                let user = Arc::new(user_row);
                inner.users.insert(user.id.clone(), Arc::clone(&user));
                Authenticated { session, user }
            }
        };
        inner.insert(&session.token, auth);
        Ok(session.clone())
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let mut inner = self.write();
        Ok(inner.get_mut(key.as_str().as_bytes()).and_then(|a| {
            let s = &mut a.session;
            (s.expires_at >= now && s.expires_at < expires_at).then(|| {
                let s = Arc::make_mut(s);
                s.expires_at = expires_at;
                s.updated_at = now;
                s.clone()
            })
        }))
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.write().remove(key.as_str().as_bytes());
        Ok(())
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        if inner
            .get(key.as_str().as_bytes())
            .is_some_and(|a| a.session.expires_at < now)
        {
            inner.remove(key.as_str().as_bytes());
        }
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        Ok(self.write().retain(|s| s.user_id != user_id))
    }

    async fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(auth) = self.write().get_mut(key.as_str().as_bytes()) {
            end(&mut auth.session, now);
        }
        Ok(())
    }

    async fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut inner = self.write();
        let mut ended = 0;
        for auth in inner.sessions.values_mut() {
            if auth.session.user_id == user_id && end(&mut auth.session, now) {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut list: Vec<Session> = self
            .read()
            .sessions
            .iter()
            .map(|slot| &slot.value.session)
            .filter(|s| s.user_id == user_id && s.expires_at > now)
            .map(|s| (**s).clone())
            .collect();
        list.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let mut inner = self.write();
        let doomed: Vec<Key> = inner
            .sessions
            .iter()
            .filter(|slot| slot.value.session.expires_at < now)
            .map(|slot| slot.key.clone())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        for key in &doomed {
            inner.remove(key.as_bytes());
        }
        Ok(doomed.len() as u64)
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(self.write().retain(|s| s.expires_at >= now))
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.read().users.get(user_id).map(|u| (**u).clone()))
    }

    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        MemoryStore::delete_user(self, user_id);
        Ok(true)
    }

    async fn lift_ban(&self, user_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut inner = self.write();
        let Some(current) = inner.users.get(user_id) else {
            return Ok(());
        };
        let mut user = (**current).clone();
        user.extra.insert("banned".into(), false.into());
        for column in ["banReason", "banExpires"] {
            if user.extra.contains_key(column) {
                user.extra.insert(column.into(), serde_json::Value::Null);
            }
        }
        user.updated_at = crate::time_fmt::truncate_ms(now);
        let user = Arc::new(user);
        inner.users.insert(user_id.to_owned(), Arc::clone(&user));
        inner.share_user(&user);
        Ok(())
    }
}

/// Ends `session` at `now` if it is still live; returns whether it was.
fn end(session: &mut Arc<Session>, now: OffsetDateTime) -> bool {
    let live = session.expires_at > now;
    if live {
        let row = Arc::make_mut(session);
        row.expires_at = crate::time_fmt::truncate_ms(now);
        row.updated_at = crate::time_fmt::truncate_ms(now);
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::key::Slot;

    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<Authenticated>>(), 64);
        assert_eq!(std::mem::align_of::<Slot<Authenticated>>(), 64);
    }

    /// A user's first session gets a fresh copy of the user row (allocated next to the
    /// session's); later sessions share that copy, and the store keeps it.
    #[tokio::test]
    async fn a_first_session_rehomes_the_user_and_later_ones_share_it() {
        let now = OffsetDateTime::now_utc();
        let store = MemoryStore::new();
        let alice = User::new("alice@example.com", "Alice", now);
        store.insert_user(alice.clone());
        let before = Arc::clone(store.read().users.get(&alice.id).unwrap());
        let session =
            |token: &str| Session::for_tests(&alice.id, token, now + time::Duration::days(1), now);
        // Held elsewhere (as a request would): shared, not re-homed.
        store.create(&session("a1"), &alice).await.unwrap();
        let first = store.lookup("a1").unwrap().user;
        assert!(Arc::ptr_eq(&first, &before));
        drop(before);
        store.delete(&StorageKey::new("a1")).await.unwrap();
        drop(first);

        // Held by the store alone: a new row, equal to the old, shared from now on.
        store.create(&session("a2"), &alice).await.unwrap();
        store.create(&session("a3"), &alice).await.unwrap();
        let (a2, a3) = (store.lookup("a2").unwrap(), store.lookup("a3").unwrap());
        assert!(Arc::ptr_eq(&a2.user, &a3.user));
        assert!(Arc::ptr_eq(
            &a2.user,
            store.read().users.get(&alice.id).unwrap()
        ));
        assert_eq!(*a2.user, alice);
    }

    /// Replacing a user re-points its sessions in place, and only its own.
    #[tokio::test]
    async fn a_replaced_user_reaches_only_its_own_sessions() {
        let now = OffsetDateTime::now_utc();
        let store = MemoryStore::new();
        let alice = User::new("alice@example.com", "Alice", now);
        let bob = User::new("bob@example.com", "Bob", now);
        let session = |user: &User, token: &str| {
            Session::for_tests(&user.id, token, now + time::Duration::days(1), now)
        };
        store.create(&session(&alice, "a1"), &alice).await.unwrap();
        store.create(&session(&alice, "a2"), &alice).await.unwrap();
        store.create(&session(&bob, "b1"), &bob).await.unwrap();
        let mut renamed = alice.clone();
        renamed.name = "Alice B.".into();
        store.insert_user(renamed);
        for token in ["a1", "a2"] {
            assert_eq!(store.lookup(token).unwrap().user.name, "Alice B.");
        }
        assert_eq!(store.lookup("b1").unwrap().user.name, "Bob");
        assert_eq!(store.session_count(), 3);
    }
}
