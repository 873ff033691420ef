//! The daily measures pushed for `[[unit]]`s (`POST /api/v1/units/NAME`).

use chrono::NaiveDate;

use super::connect::Store;
use super::rows::Cells;
use crate::model::{day_key, Timestamp};

impl Store {
    /// Stores `values` (day, exact decimal text) of `unit`, each replacing the day's earlier
    /// value, in one transaction. Returns how many were stored.
    pub async fn push_unit_values(
        &self,
        unit: &str,
        values: &[(NaiveDate, String)],
        now: Timestamp,
    ) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        for (day, value) in values {
            sqlx::query(
                "INSERT INTO unit_values (unit, day, value, pushed_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (unit, day) DO UPDATE SET value = excluded.value, pushed_at = excluded.pushed_at",
            )
            .bind(unit)
            .bind(day_key(*day))
            .bind(value)
            .bind(now.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(values.len())
    }

    /// The pushed values of `unit` with `from <= day <= to`, by day.
    pub async fn unit_values(
        &self,
        unit: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(NaiveDate, String)>> {
        let rows = sqlx::query(
            "SELECT day, value FROM unit_values WHERE unit = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(unit)
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.day(0)?, row.text(1)?)))
            .collect()
    }
}
