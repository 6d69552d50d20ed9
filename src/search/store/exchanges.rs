//! The log of LLM exchanges.

use super::*;

/// One LLM exchange to log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub operator: String,
    pub model: String,
    pub prompt: String,
    pub response: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Token counts were estimated (the server did not report usage).
    pub tokens_estimated: bool,
    pub latency_ms: u64,
    /// e.g. "ok", "invalid", "duplicate", "error: …".
    pub outcome: String,
    /// The candidate the exchange produced, if any.
    pub candidate_id: Option<i64>,
}

/// A logged exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    pub id: i64,
    pub created_ms: i64,
    pub exchange: Exchange,
}

/// Totals over the exchange log, for token budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeTotals {
    pub exchanges: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Exchanges whose token counts were estimated.
    pub estimated: u64,
}

impl SqliteStore {
    /// Logs one LLM exchange; returns its id.
    pub fn record_exchange(&mut self, exchange: &Exchange) -> Result<i64> {
        let prompt_tokens = to_i64("prompt_tokens", exchange.prompt_tokens)?;
        let completion_tokens = to_i64("completion_tokens", exchange.completion_tokens)?;
        let latency_ms = to_i64("latency_ms", exchange.latency_ms)?;
        self.write("logging an LLM exchange", |tx, now| {
            tx.execute(
                "INSERT INTO exchanges (operator, model, prompt, response, prompt_tokens, \
                 completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id, \
                 created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    exchange.operator,
                    exchange.model,
                    exchange.prompt,
                    exchange.response,
                    prompt_tokens,
                    completion_tokens,
                    exchange.tokens_estimated,
                    latency_ms,
                    exchange.outcome,
                    exchange.candidate_id,
                    now,
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => StoreError::InvalidInput {
                    field: "candidate_id",
                    problem: format!(
                        "exchange names candidate {:?}, which is not in this run",
                        exchange.candidate_id
                    ),
                },
                _ => StoreError::Sqlite {
                    action: "logging an LLM exchange",
                    source: e,
                },
            })?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Exchanges that produced candidate `id`, oldest first.
    pub fn exchanges_for_candidate(&self, id: i64) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("WHERE candidate_id = ?1 ORDER BY id", Some(id))
    }

    /// The whole exchange log, oldest first.
    pub fn exchanges(&self) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("ORDER BY id", None)
    }

    fn exchanges_where(&self, clause: &str, id: Option<i64>) -> Result<Vec<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, created, operator, model, prompt, response, prompt_tokens, \
             completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id \
             FROM exchanges {clause}"
        );
        let mut stmt = self.conn.prepare(&sql).ctx("reading the exchange log")?;
        let mut rows = match id {
            Some(id) => stmt.query([id]),
            None => stmt.query([]),
        }
        .ctx("reading the exchange log")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx("reading the exchange log")? {
            let get_u64 = |i: usize, name: &str| -> Result<u64> {
                let v: i64 = r.get(i).ctx("reading the exchange log")?;
                u64::try_from(v).map_err(|_| StoreError::BadRow {
                    detail: format!("negative {name} {v}"),
                })
            };
            out.push(ExchangeRecord {
                id: r.get(0).ctx("reading the exchange log")?,
                created_ms: r.get(1).ctx("reading the exchange log")?,
                exchange: Exchange {
                    operator: r.get(2).ctx("reading the exchange log")?,
                    model: r.get(3).ctx("reading the exchange log")?,
                    prompt: r.get(4).ctx("reading the exchange log")?,
                    response: r.get(5).ctx("reading the exchange log")?,
                    prompt_tokens: get_u64(6, "prompt_tokens")?,
                    completion_tokens: get_u64(7, "completion_tokens")?,
                    tokens_estimated: r.get(8).ctx("reading the exchange log")?,
                    latency_ms: get_u64(9, "latency_ms")?,
                    outcome: r.get(10).ctx("reading the exchange log")?,
                    candidate_id: r.get(11).ctx("reading the exchange log")?,
                },
            });
        }
        Ok(out)
    }

    /// Token totals over the exchange log.
    pub fn exchange_totals(&self) -> Result<ExchangeTotals> {
        let (exchanges, prompt, completion, estimated) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0), \
                 coalesce(sum(completion_tokens), 0), coalesce(sum(tokens_estimated), 0) \
                 FROM exchanges",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .ctx("summing the exchange log")?;
        let u = |v: i64| {
            u64::try_from(v).map_err(|_| StoreError::BadRow {
                detail: format!("negative token total {v}"),
            })
        };
        Ok(ExchangeTotals {
            exchanges: u(exchanges)?,
            prompt_tokens: u(prompt)?,
            completion_tokens: u(completion)?,
            estimated: u(estimated)?,
        })
    }
}
