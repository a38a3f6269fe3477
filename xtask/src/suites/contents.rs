//! What a seeded database holds, read as one comparable value, so that `--paired` can tell
//! whether base's and head's freshly seeded databases are interchangeable: when they are (the
//! same migrations, schema and seeded rows, as for an A/A pair and most pull requests), both
//! sides are timed against one of them, and no difference between two databases seeded alike
//! (their files' placement on disk and in the buffer cache, anything `ANALYZE` or `VACUUM`
//! left different) can pass for a difference between the commits.
//!
//! The contents are: the applied migrations (`_sqlx_migrations`' versions and checksums), every
//! column and index of the `public` schema, every sequence's position, and per table its row
//! count and the sum of a 64-bit hash of each row's text (order-independent, one pass:
//! about 0.1 s for the default seed). Two databases whose contents are equal hold the same rows,
//! barring a hash collision, which could only make two different seeds share a database.

use sqlx::{Connection, PgConnection};

use super::SuiteError;
use crate::provision::Services;

/// The schema and rows of one database, in a form only compared for equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub migrations: String,
    pub schema: String,
    pub sequences: String,
    /// `table: rows, row-hash sum` per table, by name.
    pub tables: Vec<String>,
}

const MIGRATIONS: &str = "SELECT coalesce(string_agg(version::text || ':' || encode(checksum, 'hex'), \
     ',' ORDER BY version), '') FROM _sqlx_migrations";

const SCHEMA: &str = "SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') FROM ( \
       SELECT format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable, \
                     coalesce(column_default, '')) AS line \
       FROM information_schema.columns WHERE table_schema = 'public' \
       UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public') AS schema";

const SEQUENCES: &str = "SELECT coalesce(string_agg(sequencename || ':' || \
     coalesce(last_value::text, '-'), ',' ORDER BY sequencename), '') \
     FROM pg_sequences WHERE schemaname = 'public'";

const TABLES: &str = "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
     AND tablename <> '_sqlx_migrations' ORDER BY tablename";

/// Reads the contents of the database at `database_url`.
pub async fn read(database_url: &str) -> Result<Contents, SuiteError> {
    let failed = |what: &str, e: sqlx::Error| {
        SuiteError::Database(format!("reading the seeded database's {what}: {e}"))
    };
    let mut connection = PgConnection::connect(database_url)
        .await
        .map_err(|e| failed("connection", e))?;
    let has_migrations: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut connection)
            .await
            .map_err(|e| failed("migrations table", e))?;
    let migrations = if has_migrations {
        sqlx::query_scalar(MIGRATIONS)
            .fetch_one(&mut connection)
            .await
            .map_err(|e| failed("migrations", e))?
    } else {
        String::new()
    };
    let schema: String = sqlx::query_scalar(SCHEMA)
        .fetch_one(&mut connection)
        .await
        .map_err(|e| failed("schema", e))?;
    let sequences: String = sqlx::query_scalar(SEQUENCES)
        .fetch_one(&mut connection)
        .await
        .map_err(|e| failed("sequences", e))?;
    let names: Vec<String> = sqlx::query_scalar(TABLES)
        .fetch_all(&mut connection)
        .await
        .map_err(|e| failed("tables", e))?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let quoted = name.replace('"', "\"\"");
        let summary: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*)::text || ', ' || coalesce(sum(hashtextextended(t::text, 0)), 0)::text \
             FROM public.\"{quoted}\" AS t"
        )))
        .fetch_one(&mut connection)
        .await
        .map_err(|e| failed(&format!("table {name}"), e))?;
        tables.push(format!("{name}: {summary}"));
    }
    let _ = connection.close().await;
    Ok(Contents {
        migrations,
        schema,
        sequences,
        tables,
    })
}

impl Contents {
    /// What differs between `self` and `other`, in words; `None` when they are equal.
    pub fn difference(&self, other: &Contents) -> Option<String> {
        if self.migrations != other.migrations {
            return Some("their migrations differ".to_owned());
        }
        if self.schema != other.schema {
            return Some("their schemas differ".to_owned());
        }
        if self.sequences != other.sequences {
            return Some("their sequences differ".to_owned());
        }
        let names = |contents: &Contents| -> Vec<String> {
            contents
                .tables
                .iter()
                .map(|line| line.split(':').next().unwrap_or_default().to_owned())
                .collect()
        };
        if names(self) != names(other) {
            return Some("they have different tables".to_owned());
        }
        let differing: Vec<String> = self
            .tables
            .iter()
            .zip(&other.tables)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.split(':').next().unwrap_or_default().to_owned())
            .collect();
        (!differing.is_empty()).then(|| format!("their rows differ in {}", differing.join(", ")))
    }
}

/// The contents of `database` on the run's Postgres.
pub async fn read_database(services: &Services, database: &str) -> Result<Contents, SuiteError> {
    read(&services.postgres_url(database)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(tables: &[&str]) -> Contents {
        Contents {
            migrations: "1:ab,2:cd".to_owned(),
            schema: "users.id bigint NO".to_owned(),
            sequences: "users_id_seq:50".to_owned(),
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn differences_are_named_first_by_migrations_then_schema_then_rows() {
        let a = contents(&["users: 50, 123", "words: 10, 7"]);
        assert_eq!(a.difference(&a.clone()), None);
        let mut b = a.clone();
        b.tables[1] = "words: 10, 8".to_owned();
        assert_eq!(
            a.difference(&b).as_deref(),
            Some("their rows differ in words")
        );
        b.schema.push_str("\nwords.text text NO");
        assert_eq!(a.difference(&b).as_deref(), Some("their schemas differ"));
        b.migrations.push_str(",3:ef");
        assert_eq!(a.difference(&b).as_deref(), Some("their migrations differ"));
        let c = contents(&["users: 50, 123"]);
        assert_eq!(
            a.difference(&c).as_deref(),
            Some("they have different tables")
        );
        let mut d = a.clone();
        d.sequences = "users_id_seq:51".to_owned();
        assert_eq!(a.difference(&d).as_deref(), Some("their sequences differ"));
    }
}
