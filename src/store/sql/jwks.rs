//! The `jwks` table of Better Auth's `jwt()` plugin as a [`KeySource`]: the verification keys
//! read from the same database as the sessions, so no HTTP call is needed.

use std::sync::Arc;

use super::dialect::Stmt;
use super::schema::{quote_with, table_ref};
use super::{Dialect, SqlStore};
use crate::error::BoxError;
use crate::jwt::{Algorithm, BoxFuture, Jwk, JwkSet, KeySource};

/// Better Auth's `jwks` table (`id`, `publicKey`, `alg`, `crv`) as a key source for
/// [`JwtVerifier`](crate::jwt::JwtVerifier). Built by [`SqlStore::jwks`].
///
/// Every row is a key, expired ones included, as Better Auth's own `verifyJWT` looks them up;
/// the `kid` is the row's `id` (`"1"` for serial ids). A row that cannot be used (an unknown
/// key type) is skipped with a debug log.
#[derive(Clone, Debug)]
pub struct JwksTable<D: Dialect> {
    store: SqlStore<D>,
    select: Arc<Stmt>,
    default_algorithm: Algorithm,
}

impl<D: Dialect> JwksTable<D> {
    /// The algorithm of rows whose `alg` column is `NULL` (written before Better Auth had the
    /// column): its `jwks.keyPairConfig.alg`. Default: [`Algorithm::EdDsa`], Better Auth's.
    #[must_use]
    pub fn default_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.default_algorithm = algorithm;
        self
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The `jwks` table of this database as a key source for Better Auth `jwt()` tokens.
    pub fn jwks(&self) -> JwksTable<D> {
        self.jwks_in("jwks")
    }

    /// [`jwks`](Self::jwks) for a table Better Auth was told to call `table`
    /// (`jwt({ schema: { jwks: { modelName } } })`). In the store's
    /// [`schema_name`](crate::store::SqlSchema::schema_name) when it has one, as Better Auth
    /// qualifies every table there.
    pub fn jwks_in(&self, table: &str) -> JwksTable<D> {
        let syntax = D::SYNTAX;
        let q = |name: &str| quote_with(syntax.quote, name);
        // Ids may be uuid or integer columns: read as text.
        let id = match syntax.text_cast {
            Some(text) => format!("cast({} as {text})", q("id")),
            None => q("id"),
        };
        let sql = format!(
            "select {id}, {}, {}, {} from {}",
            q("publicKey"),
            q("alg"),
            q("crv"),
            table_ref(syntax.quote, self.q.namespace.as_deref(), table)
        );
        JwksTable {
            store: self.clone(),
            select: Arc::new(Stmt::new(&syntax, &sql)),
            default_algorithm: Algorithm::EdDsa,
        }
    }
}

impl<D: Dialect> KeySource for JwksTable<D> {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        Box::pin(async move {
            let rows = self
                .store
                .dialect()
                .fetch_all("read jwks", &self.select, &[])
                .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                let text = |i| D::text(row, i).ok().flatten();
                let (Some(id), Some(public_key)) = (text(0), text(1)) else {
                    continue;
                };
                match Jwk::from_better_auth_row(
                    &id,
                    &public_key,
                    text(2).as_deref(),
                    text(3).as_deref(),
                    self.default_algorithm,
                ) {
                    Ok(key) => keys.push(key),
                    Err(error) => tracing::debug!(kid = %id, %error, "skipped a jwks row"),
                }
            }
            Ok(JwkSet::from_keys(keys))
        })
    }
}
