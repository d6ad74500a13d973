//! The conformance suite on `MemoryStore`.

mod conformance;

use conformance::Harness;
use tower_auth_session::{MemoryStore, User};

impl Harness for MemoryStore {
    async fn add_user(&self, user: &User) -> User {
        self.insert_user(user.clone());
        user.clone()
    }
    async fn delete_user_row(&self, id: &str) {
        self.delete_user(id);
    }
    fn keeps_ended_rows(&self) -> bool {
        true
    }
}

conformance_suite!(async { Some(MemoryStore::new()) });
